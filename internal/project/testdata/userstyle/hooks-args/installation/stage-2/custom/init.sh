#!/bin/bash
echo "stage-2/custom/init.sh $*"
