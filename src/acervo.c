/*
 * acervo: the command-line client (docs/cli.md).
 *
 *   acervo [--server URL] [--key KEY] [--json] COMMAND [ARGS]
 *
 * Commands are a table (name, function, one line of help); each returns 0, -1 with an
 * error whose class picks the exit code, or CLI__USAGE_RC.
 */
#include "cli/cli_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cli_command {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv, struct err *err);
    const char *help;
};

static const struct cli_command commands[] = {
    {"login", cli__cmd_login, "login URL [--key KEY]: check the key and keep server and key"},
    {"whoami", cli__cmd_whoami, "whoami: who the key belongs to"},
    {"show", cli__cmd_show, "show ID: an asset, its metadata and renditions"},
    {"ls", cli__cmd_ls, "ls [--type T] [--status S] [--limit N]: the newest assets"},
    {"search", cli__cmd_search,
     "search QUERY [--type T] [--limit N] [--transcript]: find assets, or moments said"},
    {"edit", cli__cmd_edit,
     "edit ID [--title T] [--description D] [--tag T ...] [--no-tags] [--meta K=V ...] "
     "[--language L]"},
    {"jobs", cli__cmd_jobs, "jobs ID: the asset's workflows and their progress"},
    {"download", cli__cmd_download,
     "download ID [--rendition NAME] [-o PATH] [--parallel N]: resumable, SHA-256 checked"},
    {"watch", cli__cmd_watch,
     "watch DIR [--settle S] [--once] [--tag T ...] [--meta K=V ...]: a hot folder; uploaded "
     "files go to DIR/done, refused ones to DIR/failed"},
    {"upload", cli__cmd_upload,
     "upload FILE... [--type T] [--title T] [--description D] [--tag T ...] [--meta K=V ...] "
     "[--parallel N] [--limit-rate R]: resumable, N parts at once (4)"},
};

static void usage(FILE *f)
{
    fputs("usage: acervo [--server URL] [--key KEY] [--json] COMMAND [ARGS]\n"
          "(the global options may also follow the command; -- ends the options)\n\ncommands:\n",
          f);
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %s\n", commands[i].help);
    fputs("\nexit codes: 0 ok, 1 failed, 2 usage, 3 auth, 4 not found, 5 network, 6 server "
          "error,\n7 refused by the server, 8 local file error (docs/cli.md)\n",
          f);
}

/* the commands' options that take no value; every other option of theirs takes one */
static const char *const bare_options[] = {"--no-tags", "--transcript", "--once"};

static int is_bare_option(const char *a)
{
    for (size_t i = 0; i < ARRAY_LEN(bare_options); i++)
        if (strcmp(a, bare_options[i]) == 0)
            return 1;
    return 0;
}

/*
 * Takes the global options that follow the command (acervo upload F --json, acervo login
 * URL --key KEY), as git, aws and kubectl take theirs anywhere on the line, and closes the
 * gap in argv. A command option's value is never taken for a global option (acervo upload
 * F --title --json titles F "--json"), and "--" ends the options: it and all that follows
 * stay the command's (acervo upload -- --json uploads a file named --json). Returns the
 * new argc.
 */
static int global_options_after(struct cli *c, int cmd, int argc, char **argv)
{
    int out = cmd + 1, k;

    for (k = cmd + 1; k < argc; k++) {
        const char *a = argv[k];

        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--json") == 0) {
            c->json = 1;
        } else if ((strcmp(a, "--server") == 0 || strcmp(a, "--key") == 0) && k + 1 < argc) {
            char **slot = a[2] == 's' ? &c->server : &c->key;

            free(*slot);
            *slot = xstrdup(argv[++k]);
            if (a[2] == 'k')
                c->key_from_flag = 1;
        } else if (a[0] == '-' && a[1] && !is_bare_option(a) && k + 1 < argc) {
            argv[out++] = argv[k++]; /* the option and its value, whatever it looks like */
            argv[out++] = argv[k];
        } else {
            argv[out++] = argv[k];
        }
    }
    while (k < argc)
        argv[out++] = argv[k++];
    return out;
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    struct err err = {0};
    const struct cli_command *cmd = NULL;
    int i = 1, rc;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            c.server = xstrdup(argv[++i]);
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            c.key = xstrdup(argv[++i]);
            c.key_from_flag = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            cli_release(&c);
            return CLI_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("acervo %s\n", ACERVO_VERSION);
            cli_release(&c);
            return CLI_OK;
        } else {
            break;
        }
    }
    if (i < argc)
        argc = global_options_after(&c, i, argc, argv);
    for (size_t k = 0; i < argc && k < ARRAY_LEN(commands); k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            cmd = &commands[k];
    if (!cmd) {
        if (i < argc)
            fprintf(stderr, "acervo: '%s' is not a command\n", argv[i]);
        usage(stderr);
        cli_release(&c);
        return CLI_USAGE;
    }
    c.tty = isatty(STDOUT_FILENO) && !c.json;
    if (cli_load(&c, &err) < 0 || cli_global_init(&err) < 0) {
        fprintf(stderr, "acervo: %s\n", err.msg);
        cli_release(&c);
        return err.code == ERR_INVALID ? CLI_USAGE : cli_exit_code(&err);
    }
    rc = cmd->fn(&c, argc - i, argv + i, &err);
    if (rc != 0)
        fprintf(stderr, "acervo: %s\n", err.msg);
    cli_release(&c);
    if (rc == 0)
        return CLI_OK;
    return rc == CLI__USAGE_RC ? CLI_USAGE : (int)cli_exit_code(&err);
}
