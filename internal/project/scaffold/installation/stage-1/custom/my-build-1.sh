#!/bin/bash
# An on_build hook of stage-1: runs as root while the image is built.
# Install packages here, e.g.: apt-get update && apt-get install -y --no-install-recommends git
set -euo pipefail
echo "building stage-1 on $(. /etc/os-release && echo "$PRETTY_NAME")"
