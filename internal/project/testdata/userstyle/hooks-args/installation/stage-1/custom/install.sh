#!/bin/bash
echo "stage-1/custom/install.sh $*"
