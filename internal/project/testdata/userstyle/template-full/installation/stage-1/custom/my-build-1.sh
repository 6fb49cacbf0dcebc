#!/bin/bash
echo "stage-1/custom/my-build-1.sh $*"
