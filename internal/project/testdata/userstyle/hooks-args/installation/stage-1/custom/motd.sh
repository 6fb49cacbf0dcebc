#!/bin/bash
echo "stage-1/custom/motd.sh $*"
