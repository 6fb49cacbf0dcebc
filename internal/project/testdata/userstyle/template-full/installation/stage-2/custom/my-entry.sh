#!/bin/bash
echo "stage-2/custom/my-entry.sh $*"
