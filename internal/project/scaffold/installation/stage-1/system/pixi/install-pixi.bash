#!/bin/bash
# Installs pixi (https://pixi.sh) with its official installer.
# Usage: install-pixi.bash [--user NAME] [--pypi-repo tuna|aliyun|official] [--conda-repo tuna|official]
#   --user        install into NAME's ~/.pixi (default: root's)
#   --pypi-repo   the PyPI index pixi uses (written to ~/.pixi/config.toml)
#   --conda-repo  a conda-forge mirror (written to ~/.pixi/config.toml)
set -euo pipefail
user='' pypi='' conda=''
while [ $# -gt 0 ]; do
	case "$1" in
	--user) user=${2:?--user needs a name}; shift 2 ;;
	--pypi-repo) pypi=${2:?--pypi-repo needs tuna, aliyun or official}; shift 2 ;;
	--conda-repo) conda=${2:?--conda-repo needs tuna or official}; shift 2 ;;
	*) echo "install-pixi.bash: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$pypi" in
'' | official) index='' ;;
tuna) index=https://pypi.tuna.tsinghua.edu.cn/simple ;;
aliyun) index=https://mirrors.aliyun.com/pypi/simple ;;
*) echo "install-pixi.bash: unknown --pypi-repo $pypi (tuna, aliyun or official)" >&2; exit 2 ;;
esac
case "$conda" in
'' | official) mirror='' ;;
tuna) mirror=https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud/conda-forge ;;
*) echo "install-pixi.bash: unknown --conda-repo $conda (tuna or official)" >&2; exit 2 ;;
esac
command -v curl >/dev/null || { apt-get update && apt-get install -y --no-install-recommends curl ca-certificates; }
user=${user:-root}
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || { echo "install-pixi.bash: no user $user" >&2; exit 1; }
runuser -u "$user" -- bash -c 'curl -fsSL https://pixi.sh/install.sh | bash'
{
	[ -z "$mirror" ] || printf '[mirrors]\n"https://conda.anaconda.org/conda-forge" = ["%s"]\n' "$mirror"
	[ -z "$index" ] || printf '[pypi-config]\nindex-url = "%s"\n' "$index"
} >>"$home/.pixi/config.toml"
chown "$user": "$home/.pixi/config.toml"
