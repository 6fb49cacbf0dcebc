#!/bin/bash
echo "stage-2/custom/my-on-first-run-2.sh $*"
