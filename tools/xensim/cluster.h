/* `xensim cluster`: several simulated hosts, each in its own network
 * namespace, joined by veth pairs to a bridge in a hub namespace (or, where
 * namespaces cannot be made, on loopback addresses). */
#ifndef NETBUS_XENSIM_CLUSTER_H
#define NETBUS_XENSIM_CLUSTER_H

/* argv[0] = "cluster"; exit status 0 ok, 1 failed, 2 bad usage. */
int xensim_cmd_cluster(int argc, char **argv);

#endif
