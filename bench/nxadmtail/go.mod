module github.com/tokpulse/tokpulse-agent/bench/nxadmtail

go 1.26.8

require (
	github.com/nxadm/tail v1.4.11
	github.com/tokpulse/tokpulse-agent v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/fsnotify/fsnotify v1.10.1 // indirect
	golang.org/x/sys v0.50.0 // indirect
	gopkg.in/tomb.v1 v1.0.0-20141024135613-dd632973f1e7 // indirect
)

replace github.com/tokpulse/tokpulse-agent => ../..
