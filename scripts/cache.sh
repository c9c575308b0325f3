# The cache that every checkout on this machine shares (sourced by the build scripts; README: What is cached
# where). Built tools are kept under $cache/tools/<name>-<stamp of their recipe>, and a checkout's .tools gets hard
# links to them (copies across file systems); the tests' assets (Debian VM image, local apt repositories, boot
# kernel and initrd) are built straight into $cache/test-assets, which .tools/test-assets links to.
# EPHEMEROS_CACHE chooses another place; removing the directory only makes the next run build again.
cache="${EPHEMEROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ephemeros}"
tool_cache="$cache/tools"
unused_days=30  # an entry no checkout took for this long is removed when another is stored

# from_cache KEY DEST: when the cache holds KEY, put its files into DEST and succeed; otherwise fail.
from_cache() {
    local entry="$tool_cache/$1" dest="$2" file name
    [ -f "$entry/.complete" ] || return 1
    mkdir -p "$dest"
    for file in "$entry"/*; do
        name="${file##*/}"
        ln -f "$file" "$dest/.$name.tmp" 2>/dev/null || cp -f "$file" "$dest/.$name.tmp"
        mv -f "$dest/.$name.tmp" "$dest/$name"
    done
    touch "$entry/.complete"  # when it was last taken
}

# to_cache KEY SOURCE NAME...: keep the files NAME... of directory SOURCE in the cache as KEY.
to_cache() {
    local key="$1" source="$2" work name
    shift 2
    mkdir -p "$tool_cache"
    work="$(mktemp -d "$tool_cache/.$key.XXXXXX")"
    for name in "$@"; do
        ln -f "$source/$name" "$work/${name##*/}" 2>/dev/null || cp -f "$source/$name" "$work/${name##*/}"
    done
    touch "$work/.complete"
    chmod 755 "$work"
    # Another checkout may have stored the same KEY meanwhile: same recipe, same files, so either will do.
    mv -T "$work" "$tool_cache/$key" 2>/dev/null || rm -rf "$work"
    find "$tool_cache" -mindepth 2 -maxdepth 2 -name .complete -mtime +"$unused_days" -printf '%h\0' |
        xargs -0r rm -rf
    find "$tool_cache" -mindepth 1 -maxdepth 1 -name '.*' -mmin +1440 -exec rm -rf {} +  # left by killed runs
}
