#!/bin/bash
echo "stage-1/custom/setup.sh $*"
