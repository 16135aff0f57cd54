/* colorize turing: the colourisation Turing test (serve, report). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "turing/turing.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize turing serve --real DIR --method NAME=DIR [--method NAME=DIR]...\n"
            "                             --db FILE [options]\n"
            "       colorize turing report --db FILE [options]\n"
            "\n"
            "serve: runs the test of Zhang et al. (2016) as a web page: per session 10\n"
            "practice trials with feedback, then 40 test trials (4 of them vigilance\n"
            "trials), each showing a real photo and a colourisation of it for 1 s.\n"
            "Photos pair up by file name without extension. Answers go to the SQLite\n"
            "file --db as they come; stop with Ctrl-C.\n"
            "  --real DIR          the real colour photos (JPEG or PNG)\n"
            "  --method NAME=DIR   a method's colourisations; repeat for each method\n"
            "  --db FILE           SQLite database (created if missing, resumed if not)\n"
            "  --port N            TCP port, 0 = any free one (default 8080)\n"
            "  --bind ADDR         IPv4 address to listen on (default 127.0.0.1)\n"
            "  --show-ms MS        how long each pair is shown (default 1000; the\n"
            "                      paper's protocol, change only for testing)\n"
            "  --seed N            seed for trial draws and vigilance hues (default:\n"
            "                      random)\n"
            "  --threads N         HTTP worker threads (default 4)\n"
            "\n"
            "report: per method, the fool rate (%% of test trials in which the\n"
            "colourisation was labelled real) with a bootstrap standard error, over\n"
            "completed sessions with at most 1 wrong vigilance trial.\n"
            "  --db FILE                    the database written by serve\n"
            "  --max-vigilance-misses K     exclude sessions with more (default 1)\n"
            "  --resamples N                bootstrap resamples (default 1000)\n"
            "  --seed N                     bootstrap seed (default 1)\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return 0;
    *out = v;
    return 1;
}

static int serve(int argc, char **argv)
{
    enum { OPT_REAL = 1, OPT_METHOD, OPT_DB, OPT_PORT, OPT_BIND, OPT_SHOW,
           OPT_SEED, OPT_THREADS, OPT_HELP };
    static const struct option opts[] = {
        {"real", required_argument, NULL, OPT_REAL},
        {"method", required_argument, NULL, OPT_METHOD},
        {"db", required_argument, NULL, OPT_DB},
        {"port", required_argument, NULL, OPT_PORT},
        {"bind", required_argument, NULL, OPT_BIND},
        {"show-ms", required_argument, NULL, OPT_SHOW},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    cz_turing_config cfg;
    cz_turing_config_default(&cfg);
    cz_turing_method methods[CZ_TURING_MAX_METHODS];
    int n_methods = 0, c;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_REAL: cfg.real_dir = optarg; break;
        case OPT_DB: cfg.db_path = optarg; break;
        case OPT_BIND: cfg.bind_addr = optarg; break;
        case OPT_METHOD: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1]) {
                fprintf(stderr, "colorize turing: --method wants NAME=DIR, "
                                "not '%s'\n", optarg);
                return 2;
            }
            if (n_methods == CZ_TURING_MAX_METHODS) {
                fprintf(stderr, "colorize turing: at most %d methods\n",
                        CZ_TURING_MAX_METHODS);
                return 2;
            }
            *eq = '\0';
            methods[n_methods].name = optarg;
            methods[n_methods].dir = eq + 1;
            n_methods++;
            break;
        }
        case OPT_PORT:
            if (!parse_int(optarg, 0, 65535, &v)) {
                fprintf(stderr, "colorize turing: --port wants 0 to 65535\n");
                return 2;
            }
            cfg.port = (int)v;
            break;
        case OPT_SHOW:
            if (!parse_int(optarg, 1, 60000, &v)) {
                fprintf(stderr, "colorize turing: --show-ms wants 1 to 60000\n");
                return 2;
            }
            cfg.show_ms = (int)v;
            break;
        case OPT_THREADS:
            if (!parse_int(optarg, 1, 64, &v)) {
                fprintf(stderr, "colorize turing: --threads wants 1 to 64\n");
                return 2;
            }
            cfg.threads = (int)v;
            break;
        case OPT_SEED:
            if (!parse_u64(optarg, &cfg.seed)) {
                fprintf(stderr, "colorize turing: --seed wants a number\n");
                return 2;
            }
            break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !cfg.real_dir || !cfg.db_path || n_methods == 0) {
        fprintf(stderr, "colorize turing serve: --real, --method and --db are "
                        "needed\n");
        usage(stderr);
        return 2;
    }
    cfg.methods = methods;
    cfg.n_methods = n_methods;

    /* Block the stop signals before any thread starts, so the server's
     * threads inherit the mask and only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    cz_turing_server *srv = NULL;
    cz_status status = cz_turing_server_start(&cfg, &srv);
    if (status != CZ_OK) {
        fprintf(stderr, "colorize turing: %s\n",
                *cz_last_error() ? cz_last_error() : cz_strerror(status));
        return status == CZ_ERR_INVALID ? 2 : 1;
    }
    printf("colorize turing: serving %d method%s on http://%s:%d/\n", n_methods,
           n_methods == 1 ? "" : "s", cfg.bind_addr,
           cz_turing_server_port(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    cz_turing_server_stop(srv);
    printf("colorize turing: stopped (signal %d); every answer is in %s\n", sig,
           cfg.db_path);
    return 0;
}

static int report(int argc, char **argv)
{
    enum { OPT_DB = 1, OPT_MISSES, OPT_RESAMPLES, OPT_SEED, OPT_HELP };
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"max-vigilance-misses", required_argument, NULL, OPT_MISSES},
        {"resamples", required_argument, NULL, OPT_RESAMPLES},
        {"seed", required_argument, NULL, OPT_SEED},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    cz_turing_report_options opt;
    cz_turing_report_options_default(&opt);
    const char *db = NULL;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: db = optarg; break;
        case OPT_MISSES:
            if (!parse_int(optarg, 0, CZ_TURING_MAX_TRIALS, &v)) {
                fprintf(stderr, "colorize turing: --max-vigilance-misses wants "
                                "0 to %d\n", CZ_TURING_MAX_TRIALS);
                return 2;
            }
            opt.max_vigilance_misses = (int)v;
            break;
        case OPT_RESAMPLES:
            if (!parse_int(optarg, 2, 1000000, &v)) {
                fprintf(stderr, "colorize turing: --resamples wants 2 to "
                                "1000000\n");
                return 2;
            }
            opt.resamples = (int)v;
            break;
        case OPT_SEED:
            if (!parse_u64(optarg, &opt.seed)) {
                fprintf(stderr, "colorize turing: --seed wants a number\n");
                return 2;
            }
            break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !db) {
        fprintf(stderr, "colorize turing report: --db is needed\n");
        return 2;
    }
    cz_turing_report *rep = NULL;
    cz_status status = cz_turing_report_compute(db, &opt, &rep);
    if (status != CZ_OK) {
        fprintf(stderr, "colorize turing: %s\n",
                *cz_last_error() ? cz_last_error() : cz_strerror(status));
        return 1;
    }
    cz_turing_report_print(stdout, rep, &opt);
    cz_turing_report_free(rep);
    return 0;
}

int cz_cmd_turing(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "report") == 0)
        return report(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
