"""The pod supervisor (stage1): namespaces, mounts, capabilities, seccomp and exec, built for a lean start."""
