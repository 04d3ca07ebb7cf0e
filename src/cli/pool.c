/*
 * pool: the loop of a transfer. An upload's parts and a download's ranges are items that
 * run, at most `parallel` at once, in one libcurl multi, each try of an item one easy
 * handle; the transfer says what an item is through the callbacks of struct cli_pool.
 */
#include "cli/cli_int.h"

#include <unistd.h>

int cli_pool_run(const struct cli_pool *p, struct err *err)
{
    CURLM *m = curl_multi_init();
    void **run = xcalloc((size_t)p->parallel, sizeof(*run)); /* the tries running */
    int rc = 0, active = 0;

    if (!m) {
        free(run);
        return err_set(err, ERR_INTERNAL, "libcurl cannot make a multi handle");
    }
    for (;;) {
        int left = 0, still = 0, msgs;
        int64_t now = util_now_ms(), inflight = 0;
        CURLMsg *msg;

        if (cli__stop) {
            rc = err_set(err, ERR_INTERNAL, "interrupted: %s", p->stopped);
            break;
        }
        /* start items while there is room */
        for (int i = 0; i < p->n; i++) {
            int st = p->state(p->ctx, i, now);

            if (st == CLI_POOL_DONE)
                continue;
            left++;
            if (st != CLI_POOL_READY || active >= p->parallel)
                continue;
            for (int s = 0; s < p->parallel; s++)
                if (!run[s]) {
                    run[s] = p->start(p->ctx, m, i);
                    active++;
                    break;
                }
        }
        if (!left)
            break;
        if (!active) { /* every item left waits: for its backoff, or for what turn gives */
            if (p->turn(p->ctx, 1, 0, err) < 0) {
                rc = -1;
                break;
            }
            usleep(50000);
            continue;
        }
        curl_multi_perform(m, &still);
        while ((msg = curl_multi_info_read(m, &msgs))) {
            void *x = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            rc = p->finish(p->ctx, x, msg->data.result, err);
            for (int s = 0; s < p->parallel; s++)
                if (run[s] == x)
                    run[s] = NULL;
            p->release(p->ctx, m, x);
            active--;
            if (rc < 0)
                break;
        }
        if (rc < 0)
            break;
        for (int s = 0; s < p->parallel; s++)
            if (run[s])
                inflight += p->moved(run[s]);
        if (p->turn(p->ctx, 0, inflight, err) < 0) {
            rc = -1;
            break;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int s = 0; s < p->parallel; s++)
        if (run[s])
            p->release(p->ctx, m, run[s]);
    free(run);
    curl_multi_cleanup(m);
    return rc;
}
