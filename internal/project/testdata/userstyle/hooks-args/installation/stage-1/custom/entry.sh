#!/bin/bash
echo "stage-1/custom/entry.sh $*"
