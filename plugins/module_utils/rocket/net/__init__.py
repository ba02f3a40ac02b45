"""Pod networks: configurations, host-local IPAM, rtnetlink through pyroute2, nftables, CNI plugins, DNS.

`config` reads what the operator asked for, `attach` sets it up and tears it down for one pod; the rest
are the pieces `attach` uses. Only `rtnl` needs pyroute2, and only when a pod joins a network.
"""
