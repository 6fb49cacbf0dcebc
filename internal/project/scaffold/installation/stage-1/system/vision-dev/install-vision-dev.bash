#!/bin/bash
# Computer-vision development libraries and Python packages (PeiDocker's
# vision-dev installer, as its cn-ml quick template uses it).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends libopencv-dev libopencv-contrib-dev ffmpeg libsm6 libxext6 \
	imagemagick python3 python3-pip
pip3 install --break-system-packages ipykernel scipy numpy opencv-contrib-python networkx matplotlib \
	pyyaml attrs cattrs omegaconf rich click
