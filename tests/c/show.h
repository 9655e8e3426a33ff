/* Drivers print every call as one line that the Python tests parse and replay:
 *
 *     @i name(arg, ...) = result        (int result)
 *     @l name(arg, ...) = result        (long result)
 *     @d name(arg, ...) = result        (double result, %.17g)
 *
 * Arguments must be literals; a double argument must be written with a dot (2.5, 3.0).
 * stdout is flushed around each call, so whatever the module itself prints appears in order.
 */
#ifndef SHOW_H
#define SHOW_H
#include <stdio.h>

#define SHOW_I(call) do { fflush(stdout); int r_ = (call); \
        printf("@i %s = %d\n", #call, r_); fflush(stdout); } while (0)
#define SHOW_L(call) do { fflush(stdout); long r_ = (call); \
        printf("@l %s = %ld\n", #call, r_); fflush(stdout); } while (0)
#define SHOW_D(call) do { fflush(stdout); double r_ = (call); \
        printf("@d %s = %.17g\n", #call, r_); fflush(stdout); } while (0)

#endif
