/* url: netbus device URLs (see url.h). */
#include "url.h"

#include "server.h"

#include <stdio.h>
#include <string.h>

bool nb_url_is_netbus(const char *s)
{
    return s && strncmp(s, NB_URL_SCHEME, strlen(NB_URL_SCHEME)) == 0;
}

int nb_url_parse(const char *s, struct nb_url *u, char *err, size_t errlen)
{
    if (!nb_url_is_netbus(s)) {
        snprintf(err, errlen, "not a netbus:// URL");
        return -1;
    }
    const char *auth = s + strlen(NB_URL_SCHEME);
    const char *slash = strchr(auth, '/');
    char hp[300];
    if (!slash || (size_t)(slash - auth) >= sizeof(hp) || slash == auth) {
        snprintf(err, errlen, "'%.200s' is not netbus://HOST[:PORT]/EXPORT",
                 s);
        return -1;
    }
    memcpy(hp, auth, (size_t)(slash - auth));
    hp[slash - auth] = '\0';
    for (const char *c = hp; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '@' ||
            *c == '/') {
            snprintf(err, errlen, "'%.200s': bad character in the host", s);
            return -1;
        }
    if (nb_split_hostport(hp, u->host, sizeof(u->host), &u->port) < 0 ||
        u->port == 0) {
        snprintf(err, errlen, "'%.200s': want HOST, HOST:PORT or [IPV6]:PORT "
                 "before the export name", s);
        return -1;
    }
    const char *name = slash + 1;
    if (!nb_name_ok(name, strlen(name))) {
        snprintf(err, errlen, "'%.200s': the export name must be 1-64 of "
                 "A-Z a-z 0-9 . _ - (nothing after it)", s);
        return -1;
    }
    snprintf(u->export_name, sizeof(u->export_name), "%s", name);
    return 0;
}
