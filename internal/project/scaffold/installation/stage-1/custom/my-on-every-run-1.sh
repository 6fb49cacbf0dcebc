#!/bin/bash
# An on_every_run hook: runs as root at every container start.
echo "container started at $(date -u +%FT%TZ)"
