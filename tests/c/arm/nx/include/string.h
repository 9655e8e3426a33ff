#include "../firmware.h"
