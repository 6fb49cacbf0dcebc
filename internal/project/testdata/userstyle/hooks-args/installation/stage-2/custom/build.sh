#!/bin/bash
echo "stage-2/custom/build.sh $*"
