#include "show.h"

double simulate(int steps);
double polygon_area(int sides, double radius);
double statistics(int n);
double triangle_normal(double skew);
int report_swarm(int count);

int main(void)
{
    SHOW_D(simulate(50));
    SHOW_I(report_swarm(4));
    SHOW_D(polygon_area(3, 1.0));
    SHOW_D(polygon_area(7, 2.5));
    SHOW_D(polygon_area(1000, 1.0));
    SHOW_D(statistics(10));
    SHOW_D(statistics(250));
    SHOW_D(triangle_normal(0.25));
    SHOW_D(triangle_normal(-3.5));
    SHOW_D(simulate(5));
    SHOW_I(report_swarm(16));
    return 0;
}
