#!/bin/bash
# Development tools, as PeiDocker's quick templates install them (an example:
# remove it from user_config.yml if you do not need it).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-pip cmake cmake-curses-gui pkg-config \
	git git-lfs nano mc tzdata ca-certificates curl
