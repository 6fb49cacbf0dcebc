#!/bin/bash
echo "stage-2/custom/serve.sh $*"
