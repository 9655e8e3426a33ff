/* Just enough of NuttX for symtab.c */
#include "../../../firmware.h"
