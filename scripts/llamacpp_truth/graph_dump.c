// Dumps every graph llama.cpp reserves its compute buffers for, tensor by tensor, so that
// crates/core/src/engine/llamacpp/reserve_graph.rs can be compared with llama.cpp's own graph
// node for node (dump_graph.py runs it; nothing here runs in CI).
//
// Built as a shared object and preloaded (LD_PRELOAD): it interposes
// ggml_backend_sched_reserve (ggml/include/ggml-backend.h), which llama-context.cpp
// `graph_reserve` calls with the worst-case graph, writes the graph to $GRAPH_DUMP, then calls
// the real function. One line per tensor, leafs first then nodes in ggml's order:
//   L|N id op type ne0 ne1 ne2 ne3 nb0 nb1 nb2 nb3 flags view_src view_offs ext name srcs...
// id: the tensor's index in this dump (tensors outside the graph get ids as they are met);
// op: ggml_op_desc (unary and glu ops by their sub-op); ext: 1 when the tensor has memory of
// its own outside the compute buffer (data or buffer set: weights, caches).

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "ggml-backend.h"

struct ggml_cgraph;
int ggml_graph_n_nodes(struct ggml_cgraph * cgraph);
struct ggml_tensor * ggml_graph_node(struct ggml_cgraph * cgraph, int i);

// The leafs are not reachable through the public API; ggml-impl.h's struct ggml_cgraph
// starts with: int size; int n_nodes; int n_leafs; nodes; grads; grad_accs; leafs.
struct cgraph_head {
    int size;
    int n_nodes;
    int n_leafs;
    struct ggml_tensor ** nodes;
    struct ggml_tensor ** grads;
    struct ggml_tensor ** grad_accs;
    struct ggml_tensor ** leafs;
};

static struct ggml_tensor ** seen;
static int n_seen, cap_seen;

static int id_of(struct ggml_tensor * t) {
    for (int i = 0; i < n_seen; i++) {
        if (seen[i] == t) {
            return i;
        }
    }
    if (n_seen == cap_seen) {
        cap_seen = cap_seen ? 2 * cap_seen : 4096;
        seen = realloc(seen, sizeof(*seen) * cap_seen);
    }
    seen[n_seen] = t;
    return n_seen++;
}

static void dump_tensor(FILE * f, char kind, struct ggml_tensor * t) {
    fprintf(f, "%c %d %s %s", kind, id_of(t), ggml_op_desc(t), ggml_type_name(t->type));
    for (int i = 0; i < 4; i++) fprintf(f, " %lld", (long long) t->ne[i]);
    for (int i = 0; i < 4; i++) fprintf(f, " %zu", t->nb[i]);
    char name[GGML_MAX_NAME];
    snprintf(name, sizeof(name), "%s", t->name[0] ? t->name : "-");
    for (char * c = name; *c; c++) {
        if (*c == ' ') *c = '_';  // one field per name
    }
    fprintf(f, " %d %d %zu %d %s", t->flags, t->view_src ? id_of(t->view_src) : -1, t->view_offs,
            (t->data != NULL || t->buffer != NULL) ? 1 : 0, name);
    for (int j = 0; j < GGML_MAX_SRC; j++) {
        if (t->src[j]) fprintf(f, " %d", id_of(t->src[j]));
    }
    fprintf(f, "\n");
}

bool ggml_backend_sched_reserve(ggml_backend_sched_t sched, struct ggml_cgraph * graph) {
    static bool (*real)(ggml_backend_sched_t, struct ggml_cgraph *);
    if (!real) {
        real = (bool (*)(ggml_backend_sched_t, struct ggml_cgraph *)) dlsym(RTLD_NEXT, "ggml_backend_sched_reserve");
    }
    const char * path = getenv("GRAPH_DUMP");
    if (path) {
        FILE * f = fopen(path, "a");
        if (f) {
            struct cgraph_head * g = (struct cgraph_head *) graph;
            n_seen = 0;
            fprintf(f, "GRAPH %d %d\n", g->n_nodes, g->n_leafs);
            for (int i = 0; i < g->n_leafs; i++) dump_tensor(f, 'L', g->leafs[i]);
            for (int i = 0; i < g->n_nodes; i++) dump_tensor(f, 'N', g->nodes[i]);
            fclose(f);
        }
    }
    return real(sched, graph);
}
