/* work_count.c — see work_count.h. */
#include "work_count.h"

WorkCount unet_work_count;
