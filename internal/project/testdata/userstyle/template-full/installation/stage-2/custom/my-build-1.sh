#!/bin/bash
echo "stage-2/custom/my-build-1.sh $*"
