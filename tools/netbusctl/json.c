/* JSON strings for --json output. */
#include "netbusctl.h"

#include <stdio.h>

void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

void json_field(const char *key, const char *v, bool comma)
{
    printf("%s\"%s\": ", comma ? ", " : "", key);
    json_str(v ? v : "");
}
