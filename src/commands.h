/* commands.h — the subcommands of `unet2022`, one file each (cmd_*.c). Each returns the
 * process exit status: 0 success, 1 usage error, 2 bad input or runtime error. */
#ifndef UNET_COMMANDS_H
#define UNET_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
