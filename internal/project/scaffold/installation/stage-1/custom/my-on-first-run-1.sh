#!/bin/bash
# An on_first_run hook: runs as root once, when a container first starts.
echo "first start of this container"
