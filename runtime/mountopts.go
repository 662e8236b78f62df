package runtime

import (
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOpts is a mount's option list split by what the kernel does with it.
type mountOpts struct {
	flags     uintptr // set
	clear     uintptr // cleared (for bind mounts, whose flags are changed, not given)
	propagate []uintptr
	data      []string
	bind      bool
	recursive bool // rbind
	// rattr are mount_setattr attributes applied to the whole tree (rro, ...).
	rattrSet, rattrClr uint64
	tmpcopyup          bool
	idmap              bool
	ridmap             bool
}

var flagOpts = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
}

var propagationOpts = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveAttrOpts are the "r"-prefixed options runc and crun accept for
// attributes applied to a whole bind tree.
var recursiveAttrOpts = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
}

// MountOptions lists the mount options Berth understands (the features
// document's mountOptions): every one parseMountOptions acts on.
func MountOptions() []string {
	out := []string{"bind", "rbind", "tmpcopyup", "idmap", "ridmap"}
	for o := range flagOpts {
		out = append(out, o)
	}
	for o := range propagationOpts {
		out = append(out, o)
	}
	for o := range recursiveAttrOpts {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func parseMountOptions(opts []string) mountOpts {
	var o mountOpts
	for _, opt := range opts {
		if f, ok := flagOpts[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
				o.clear |= f.flag
			} else {
				o.flags |= f.flag
				o.clear &^= f.flag
			}
			continue
		}
		if p, ok := propagationOpts[opt]; ok {
			o.propagate = append(o.propagate, p)
			continue
		}
		if a, ok := recursiveAttrOpts[opt]; ok {
			if a.clear {
				o.rattrClr |= a.attr
				o.rattrSet &^= a.attr
			} else {
				o.rattrSet |= a.attr
				o.rattrClr &^= a.attr
			}
			continue
		}
		switch opt {
		case "bind":
			o.bind = true
		case "rbind":
			o.bind, o.recursive = true, true
		case "tmpcopyup":
			o.tmpcopyup = true
		case "idmap":
			o.idmap = true
		case "ridmap":
			o.idmap, o.ridmap = true, true
		default:
			o.data = append(o.data, opt)
		}
	}
	return o
}

// mountAttrs converts MS_* flags into mount_setattr attributes to set and
// clear, for bind mounts changed through the new mount API.
func mountAttrs(set, clear uintptr) (uint64, uint64) {
	pairs := []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	}
	var s, c uint64
	for _, p := range pairs {
		if set&p.ms != 0 {
			s |= p.attr
		} else if clear&p.ms != 0 {
			c |= p.attr
		}
	}
	// Access-time behaviour is one of three values: setting one clears the
	// field first.
	switch {
	case set&unix.MS_NOATIME != 0:
		s, c = s|unix.MOUNT_ATTR_NOATIME, c|unix.MOUNT_ATTR__ATIME
	case set&unix.MS_STRICTATIME != 0:
		s, c = s|unix.MOUNT_ATTR_STRICTATIME, c|unix.MOUNT_ATTR__ATIME
	case set&unix.MS_RELATIME != 0:
		s, c = s|unix.MOUNT_ATTR_RELATIME, c|unix.MOUNT_ATTR__ATIME
	}
	return s, c
}

func (o *mountOpts) dataString() string { return strings.Join(o.data, ",") }
