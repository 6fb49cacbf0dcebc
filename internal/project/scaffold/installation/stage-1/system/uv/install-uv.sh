#!/bin/bash
# Installs uv (https://docs.astral.sh/uv/) with its official installer.
# Usage: install-uv.sh [--user NAME] [--pypi-repo tuna|aliyun|official]
#   --user       install into NAME's ~/.local/bin (default: /usr/local/bin for root)
#   --pypi-repo  the default index uv uses (written to the user's uv.toml)
set -euo pipefail
user='' repo=''
while [ $# -gt 0 ]; do
	case "$1" in
	--user) user=${2:?--user needs a name}; shift 2 ;;
	--pypi-repo) repo=${2:?--pypi-repo needs tuna, aliyun or official}; shift 2 ;;
	*) echo "install-uv.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$repo" in
'' | official) index='' ;;
tuna) index=https://pypi.tuna.tsinghua.edu.cn/simple ;;
aliyun) index=https://mirrors.aliyun.com/pypi/simple ;;
*) echo "install-uv.sh: unknown --pypi-repo $repo (tuna, aliyun or official)" >&2; exit 2 ;;
esac
command -v curl >/dev/null || { apt-get update && apt-get install -y --no-install-recommends curl ca-certificates; }
if [ -z "$user" ] || [ "$user" = root ]; then
	curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh
	home=/root
else
	home=$(getent passwd "$user" | cut -d: -f6)
	[ -n "$home" ] || { echo "install-uv.sh: no user $user" >&2; exit 1; }
	runuser -u "$user" -- sh -c 'curl -LsSf https://astral.sh/uv/install.sh | sh'
fi
if [ -n "$index" ]; then
	mkdir -p "$home/.config/uv"
	printf '[[index]]\nurl = "%s"\ndefault = true\n' "$index" >"$home/.config/uv/uv.toml"
	[ -z "$user" ] || chown -R "$user": "$home/.config"
fi
