#!/bin/bash
echo "stage-1/custom/health.sh $*"
