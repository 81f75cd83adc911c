/* commands.h — the subcommands of `unet2022`, one file each (cmd_*.c). Each returns the
 * process exit status: 0 success, 1 usage error, 2 bad input or runtime error. */
#ifndef UNET_COMMANDS_H
#define UNET_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_check_store(int argc, char **argv);
int cmd_bench_store(int argc, char **argv);
int cmd_bench_loader(int argc, char **argv);

#endif
