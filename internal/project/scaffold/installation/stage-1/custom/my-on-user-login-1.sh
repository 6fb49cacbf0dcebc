#!/bin/bash
# An on_user_login hook: runs as the user in every SSH login shell.
echo "welcome, $(id -un)"
