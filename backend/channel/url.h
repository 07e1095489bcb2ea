/* url: device URLs, netbus://HOST[:PORT]/EXPORT. HOST is a name, an IPv4
 * address or a bracketed IPv6 address; PORT defaults to 7797; EXPORT is an
 * export name (1-64 of A-Z a-z 0-9 . _ -). */
#ifndef NETBUS_CHANNEL_URL_H
#define NETBUS_CHANNEL_URL_H

#include "frame.h"

#include <stdbool.h>
#include <stddef.h>

#define NB_URL_SCHEME "netbus://"

struct nb_url {
    char host[256];
    unsigned port;
    char export_name[NB_NAME_MAX + 1];
};

bool nb_url_is_netbus(const char *s);
/* 0, or -1 with a reason in err. */
int nb_url_parse(const char *s, struct nb_url *u, char *err, size_t errlen);

#endif
