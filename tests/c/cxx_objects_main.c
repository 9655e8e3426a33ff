#include "show.h"

double shapes_total(int n);
long template_mix(long n);
int local_static(int k);
int serial_now(void);
int live_trackers(void);
long more_weighted(int n);
int more_serial(void);

int main(void)
{
    SHOW_I(live_trackers());
    SHOW_D(shapes_total(1));
    SHOW_D(shapes_total(9));
    SHOW_L(template_mix(3));
    SHOW_L(template_mix(40));
    SHOW_I(serial_now());
    SHOW_I(more_serial());
    SHOW_I(serial_now());
    SHOW_L(more_weighted(12));
    SHOW_I(local_static(5));
    SHOW_I(live_trackers());
    SHOW_I(local_static(6));
    return 0;
}
