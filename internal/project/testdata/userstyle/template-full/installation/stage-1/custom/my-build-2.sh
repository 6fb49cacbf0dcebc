#!/bin/bash
echo "stage-1/custom/my-build-2.sh $*"
