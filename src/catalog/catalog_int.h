/*
 * catalog internals shared by the wrappers (catalog.c) and every backend.
 */
#ifndef ACERVO_CATALOG_INT_H
#define ACERVO_CATALOG_INT_H

#include "catalog/catalog.h"

/**
 * An open write transaction. Each backend's transaction handle begins with this, so the
 * cat_tx_* wrappers can dispatch without knowing the backend.
 */
struct cat_tx {
    const struct catalog_wf_ops *ops;
};

#endif
