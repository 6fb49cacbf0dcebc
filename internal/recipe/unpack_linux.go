package recipe

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// beneath resolves a path below a directory descriptor, following no
// symbolic link of any kind and never leaving the directory.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Unpacker writes a recipe's entries under one directory, contained by
// construction (see the package documentation). It is not safe for
// concurrent use.
type Unpacker struct {
	root int // O_PATH descriptor of the directory
	// made are directories it created as parents, which an entry of their
	// own may still name once.
	made map[string]bool
	// The last parent directory opened: entries come grouped by directory.
	lastDir string
	lastFd  int
}

// NewUnpacker unpacks into dir, which must exist (and should be empty:
// entries never replace what is there).
func NewUnpacker(dir string) (*Unpacker, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unpack into %s: %w", dir, err)
	}
	// Fail now, not at the first entry, on a kernel without openat2.
	probe, err := unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("unpack into %s: openat2 (Linux 5.6 or later): %w", dir, err)
	}
	unix.Close(probe)
	return &Unpacker{root: fd, made: map[string]bool{}, lastFd: -1}, nil
}

// Close releases the directory.
func (u *Unpacker) Close() error {
	if u.lastFd >= 0 {
		unix.Close(u.lastFd)
		u.lastFd = -1
	}
	return unix.Close(u.root)
}

// Write unpacks one entry (a clean name, as Walk gives it); r reads a
// regular file's content.
func (u *Unpacker) Write(hdr *tar.Header, r io.Reader) error {
	name := hdr.Name
	if !isCleanRel(name) {
		return &Error{Entry: name, Msg: "not a clean relative name"}
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	parent, err := u.parent(dir)
	if err != nil {
		return entryError(name, err)
	}
	mode := uint32(hdr.Mode) & 0o777
	switch hdr.Typeflag {
	case tar.TypeReg:
		return u.file(parent, name, base, mode|0o600, hdr, r)
	case tar.TypeDir:
		return u.dir(parent, name, base, mode|0o700)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return entryError(name, err)
		}
		return nil
	case tar.TypeLink:
		return u.hardlink(parent, name, base, hdr.Linkname)
	}
	return &Error{Entry: name, Msg: fmt.Sprintf("entry type %q is not allowed", string(hdr.Typeflag))}
}

func (u *Unpacker) file(parent int, name, base string, mode uint32, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat2(parent, base, &unix.OpenHow{
		Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC, Mode: 0o600, Resolve: beneath})
	if err != nil {
		return entryError(name, err)
	}
	f := os.NewFile(uintptr(fd), base)
	_, err = io.Copy(f, r)
	if err != nil {
		f.Close()
		return &Error{Entry: name, Msg: "truncated or corrupt archive: " + err.Error()}
	}
	if err := f.Chmod(os.FileMode(mode)); err != nil { // fchmod: the umask may have cut the mode
		f.Close()
		return entryError(name, err)
	}
	if err := f.Close(); err != nil {
		return entryError(name, err)
	}
	// By the parent's descriptor and without following: the name is the
	// file just made, never an entry that was there before.
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(parent, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return entryError(name, err)
	}
	return nil
}

func (u *Unpacker) dir(parent int, name, base string, mode uint32) error {
	err := unix.Mkdirat(parent, base, 0o700)
	switch {
	case err == nil:
	case errors.Is(err, unix.EEXIST) && u.made[name]:
		delete(u.made, name) // its own entry, once
	default:
		return entryError(name, err)
	}
	// O_DIRECTORY without O_NOFOLLOW: with RESOLVE_NO_SYMLINKS a link in
	// its place fails (ELOOP) rather than being opened or followed.
	fd, err := unix.Openat2(parent, base, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return entryError(name, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, mode); err != nil {
		return entryError(name, err)
	}
	return nil
}

func (u *Unpacker) hardlink(parent int, name, base, target string) error {
	if !isCleanRel(target) {
		return &Error{Entry: name, Msg: "hard link target is not a clean relative name"}
	}
	tdir, tbase := path.Split(target)
	tparent, err := u.open(strings.TrimSuffix(tdir, "/"))
	if err != nil {
		return &Error{Entry: name, Msg: "hard link to " + target + ": " + errText(err)}
	}
	defer unix.Close(tparent)
	var st unix.Stat_t
	if err := unix.Fstatat(tparent, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &Error{Entry: name, Msg: "hard link to " + target + ": " + errText(err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &Error{Entry: name, Msg: "hard link to " + target + ", which is not a regular file"}
	}
	// Flags 0: linkat never follows a link at target's last component.
	if err := unix.Linkat(tparent, tbase, parent, base, 0); err != nil {
		return entryError(name, err)
	}
	return nil
}

// parent returns a descriptor of dir (below the root), making missing
// directories; the Unpacker owns it.
func (u *Unpacker) parent(dir string) (int, error) {
	if dir == "" || dir == "." {
		return u.root, nil
	}
	if dir == u.lastDir && u.lastFd >= 0 {
		return u.lastFd, nil
	}
	fd, err := u.open(dir)
	if errors.Is(err, unix.ENOENT) {
		fd, err = u.makeDirs(dir)
	}
	if err != nil {
		return -1, err
	}
	if u.lastFd >= 0 {
		unix.Close(u.lastFd)
	}
	u.lastDir, u.lastFd = dir, fd
	return fd, nil
}

// open opens an existing directory below the root; the caller closes it.
func (u *Unpacker) open(dir string) (int, error) {
	if dir == "" {
		dir = "."
	}
	return unix.Openat2(u.root, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
}

// makeDirs makes dir's missing components one at a time, each opened
// relative to the one before without following links.
func (u *Unpacker) makeDirs(dir string) (int, error) {
	cur := u.root
	done := ""
	for _, c := range strings.Split(dir, "/") {
		done = path.Join(done, c)
		err := unix.Mkdirat(cur, c, 0o755)
		if err == nil {
			u.made[done] = true
		} else if !errors.Is(err, unix.EEXIST) {
			return -1, closeOnErr(cur, u.root, err)
		}
		next, err := unix.Openat2(cur, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
		if cur != u.root {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

func closeOnErr(fd, root int, err error) error {
	if fd != root {
		unix.Close(fd)
	}
	return err
}

func isCleanRel(name string) bool {
	return name != "" && name != "." && !path.IsAbs(name) && path.Clean(name) == name &&
		name != ".." && !strings.HasPrefix(name, "../")
}

// entryError says what a failed call means for the entry, without the
// host paths an *os.PathError would carry.
func entryError(name string, err error) error {
	return &Error{Entry: name, Msg: errText(err)}
}

func errText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.EEXIST:
			return "duplicate entry: the name exists already"
		case unix.ELOOP, unix.EXDEV:
			return "lies under or is a symbolic link, which is never written through"
		case unix.ENOTDIR:
			return "lies under a file"
		case unix.ENOENT:
			return "does not exist"
		}
		return errno.Error()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
