/* A module that calls a plugin which may not be linked yet: until it is, the call reaches
   linkload's unresolved handler; once it is, the call is a direct `call rel32`. */
#include <stdio.h>

int plugin_transform(int x);   /* defined by plugin_v1.c / plugin_v2.c */

int run_pipeline(int x) {
    int y = plugin_transform(x);
    printf("app: plugin_transform(%d) = %d\n", x, y);
    fflush(stdout);
    return y;
}
