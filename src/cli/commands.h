/* The subcommands of `colorize`, one file each (src/cli/cmd_<name>.c). Each
 * gets argv with argv[0] set to its own name, parses its own options with
 * getopt_long, prints its own messages, and returns the process exit status:
 * 0 success, 1 some work failed, 2 bad usage. */
#ifndef CZ_CLI_COMMANDS_H
#define CZ_CLI_COMMANDS_H

int cz_cmd_colorize(int argc, char **argv); /* the default: colour photos */
int cz_cmd_train(int argc, char **argv);    /* GAN training from a folder of photos */
int cz_cmd_eval(int argc, char **argv);     /* metrics against the originals */
int cz_cmd_grid(int argc, char **argv);     /* comparison picture of models */
int cz_cmd_turing(int argc, char **argv);   /* Turing test: serve, report */
int cz_cmd_classify(int argc, char **argv); /* ImageNet classification check */
int cz_cmd_info(int argc, char **argv);     /* describe model files */
int cz_cmd_average(int argc, char **argv);  /* snapshots of a run -> their mean */
int cz_cmd_pack(int argc, char **argv);     /* generator -> compact shipped file */
int cz_cmd_unpack(int argc, char **argv);   /* compact file -> whole generator */
int cz_cmd_import_keras(int argc, char **argv); /* Keras ResNet50 -> model file */

#endif
