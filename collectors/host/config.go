package host

import (
	"path/filepath"

	"github.com/tokpulse/tokpulse-agent/internal/yamlx"
)

// Config switches the families of the host collector (`host:` in
// agent.yaml) and filters their devices. Every family node_exporter enables
// by default on Linux and that the agent implements is on by default, with
// node_exporter's default filters.
type Config struct {
	CPU        bool             `yaml:"cpu"`
	Load       bool             `yaml:"load"`
	Memory     bool             `yaml:"memory"`
	BootTime   bool             `yaml:"boot_time"`
	Stat       bool             `yaml:"stat"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	Disk       DeviceConfig     `yaml:"disk"`
	Network    DeviceConfig     `yaml:"network"`
	NetClass   DeviceConfig     `yaml:"netclass"`
	Netstat    FieldsConfig     `yaml:"netstat"`
	Vmstat     FieldsConfig     `yaml:"vmstat"`
	Sockstat   bool             `yaml:"sockstat"`
	Softnet    bool             `yaml:"softnet"`
	ARP        DeviceConfig     `yaml:"arp"`
	UDPQueues  bool             `yaml:"udp_queues"`
	Conntrack  bool             `yaml:"conntrack"`
	Pressure   bool             `yaml:"pressure"`
	Entropy    bool             `yaml:"entropy"`
	Filefd     bool             `yaml:"filefd"`
	Uname      bool             `yaml:"uname"`
	OS         bool             `yaml:"os"`
	Time       bool             `yaml:"time"`
	Timex      bool             `yaml:"timex"`
	Mdadm      bool             `yaml:"mdadm"`
	Bonding    bool             `yaml:"bonding"`
	Textfile   TextfileConfig   `yaml:"textfile"`
}

// FilesystemConfig selects the mount points reported. As in node_exporter,
// a mount is reported unless its mount point or type matches an exclude (or
// fails an include when one is set); nothing else is left out, so NFS, CIFS,
// FUSE, tmpfs and bind mounts are reported.
type FilesystemConfig struct {
	Enabled            bool         `yaml:"enabled"`
	MountPointsInclude yamlx.Regexp `yaml:"mount_points_include"`
	MountPointsExclude yamlx.Regexp `yaml:"mount_points_exclude"`
	FSTypesInclude     yamlx.Regexp `yaml:"fs_types_include"`
	FSTypesExclude     yamlx.Regexp `yaml:"fs_types_exclude"`
	// MountTimeout bounds one statfs; a mount that takes longer (a stale
	// NFS server) is reported with node_filesystem_device_error 1 and is not
	// asked again until its pending statfs returns.
	MountTimeout yamlx.Duration `yaml:"mount_timeout"`
}

// TextfileConfig reads node_exporter textfile-collector files (*.prom).
type TextfileConfig struct {
	Enabled bool `yaml:"enabled"`
	// Directory holds the *.prom files; empty means none are read, and only
	// node_textfile_scrape_error 0 is reported, as node_exporter does.
	Directory string `yaml:"directory"`
}

// Default regular expressions: node_exporter's own defaults (upstream, not
// Debian's patched ones).
const (
	DefaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	DefaultFSTypesExclude     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`
	// DefaultDisksExclude leaves out partitions (counted in their disk),
	// RAM and loop devices.
	DefaultDisksExclude   = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`
	DefaultVmstatFields   = `^(oom_kill|pgpg|pswp|pg.*fault).*`
	DefaultNetstatFields  = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`
	DefaultMountTimeout   = yamlx.Duration(1e9) // 1s
	defaultTextfileEnable = true
)

// DefaultConfig returns the host collector's defaults: every family on,
// node_exporter's filters.
func DefaultConfig() Config {
	return Config{
		CPU: true, Load: true, Memory: true, BootTime: true, Stat: true,
		Filesystem: FilesystemConfig{
			Enabled:            true,
			MountPointsExclude: yamlx.MustRegexp(DefaultMountPointsExclude),
			FSTypesExclude:     yamlx.MustRegexp(DefaultFSTypesExclude),
			MountTimeout:       DefaultMountTimeout,
		},
		Disk:     DeviceConfig{Enabled: true, DevicesExclude: yamlx.MustRegexp(DefaultDisksExclude)},
		Network:  DeviceConfig{Enabled: true},
		NetClass: DeviceConfig{Enabled: true},
		Netstat:  FieldsConfig{Enabled: true, Fields: yamlx.MustRegexp(DefaultNetstatFields)},
		Vmstat:   FieldsConfig{Enabled: true, Fields: yamlx.MustRegexp(DefaultVmstatFields)},
		ARP:      DeviceConfig{Enabled: true},
		Sockstat: true, Softnet: true, UDPQueues: true,
		Conntrack: true, Pressure: true, Entropy: true, Filefd: true,
		Uname: true, OS: true, Time: true, Timex: true,
		Mdadm: true, Bonding: true,
		Textfile: TextfileConfig{Enabled: defaultTextfileEnable},
	}
}

// Validate implements yamlx.Validator.
func (c *Config) Validate(v *yamlx.Checker, path string) {
	if c.Filesystem.MountTimeout <= 0 {
		v.Errorf(yamlx.Join(path, "filesystem.mount_timeout"), "must be positive; write e.g. 1s")
	}
	if d := c.Textfile.Directory; d != "" && !filepath.IsAbs(d) {
		v.Errorf(yamlx.Join(path, "textfile.directory"), "%q is not an absolute path; write e.g. /var/lib/tokpulse-agent/textfile", d)
	}
}
