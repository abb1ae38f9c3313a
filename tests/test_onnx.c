/* The ONNX reader against facts written by onnx's own Python decoder
 * (tools/make_onnx_reader_fixtures.py): graph structure, every attribute type, weights in every
 * storage, external data, ONNX conformance-suite cases, and every bad file it must name. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/onnx.h"

static cJSON *expected;

static const char *reader_fixture(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s", fixture_path("onnx_reader"));
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/%s", name);
    return path;
}

static int load_expected(void **state)
{
    (void)state;
    expected = load_json(reader_fixture("expected.json"));
    return 0;
}

static int free_expected(void **state)
{
    (void)state;
    cJSON_Delete(expected);
    return 0;
}

static const cJSON *get(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!item) fail_msg("expected.json: key '%s' missing", key);
    return item;
}

/* A float32 fact: a JSON number, or "inf" / "-inf" / "nan" (JSON has none of them). */
static void assert_float_fact(const cJSON *fact, float value, const char *what, int index)
{
    if (cJSON_IsString(fact)) {
        const char *s = fact->valuestring;
        bool ok =
            strcmp(s, "nan") == 0 ? isnan(value) : isinf(value) && (s[0] == '-') == (value < 0);
        if (!ok) fail_msg("%s[%d]: expected %s, read %g", what, index, s, (double)value);
        return;
    }
    /* Exact: float16, bfloat16 and float widen exactly, double rounds as numpy rounds it. */
    if ((float)fact->valuedouble != value)
        fail_msg("%s[%d]: expected %.9g, read %.9g", what, index, fact->valuedouble, (double)value);
}

static void assert_i64_list(const cJSON *facts, const int64_t *values, uint64_t count,
                            const char *what)
{
    if ((uint64_t)cJSON_GetArraySize(facts) != count)
        fail_msg("%s: expected %d values, read %llu", what, cJSON_GetArraySize(facts),
                 (unsigned long long)count);
    int k = 0;
    const cJSON *fact;
    cJSON_ArrayForEach(fact, facts)
    {
        if ((int64_t)fact->valuedouble != values[k])
            fail_msg("%s[%d]: expected %.0f, read %lld", what, k, fact->valuedouble,
                     (long long)values[k]);
        k++;
    }
}

static void assert_tensor_matches(const cJSON *facts, const cleval_onnx_tensor *t)
{
    const char *name = get(facts, "name")->valuestring;
    assert_string_equal(t->name, name);
    assert_int_equal(t->dtype, get(facts, "dtype")->valueint);
    assert_i64_list(get(facts, "dims"), t->dims, t->rank, name);
    uint64_t count = 1;
    for (uint32_t k = 0; k < t->rank; k++)
        count *= (uint64_t)t->dims[k];
    assert_int_equal(t->count, count);

    const char *storage = get(facts, "storage")->valuestring;
    if (strcmp(storage, "none") == 0) {
        assert_int_equal(t->storage, CLEVAL_ONNX_DATA_NONE);
        assert_null(t->f32);
        assert_null(t->i64);
        return;
    }
    const cJSON *values = get(facts, "values");
    assert_int_equal(cJSON_GetArraySize(values), t->count);
    if (strcmp(storage, "i64") == 0) {
        assert_int_equal(t->storage, CLEVAL_ONNX_DATA_I64);
        assert_non_null(t->i64);
        assert_null(t->f32);
        assert_i64_list(values, t->i64, t->count, name);
        return;
    }
    assert_int_equal(t->storage, CLEVAL_ONNX_DATA_F32);
    assert_non_null(t->f32);
    assert_null(t->i64);
    int k = 0;
    const cJSON *fact;
    cJSON_ArrayForEach(fact, values)
    {
        assert_float_fact(fact, t->f32[k], name, k);
        k++;
    }
}

static void assert_strings_match(const cJSON *facts, char *const *strings, uint32_t count,
                                 const char *what)
{
    if ((uint32_t)cJSON_GetArraySize(facts) != count)
        fail_msg("%s: expected %d strings, read %u", what, cJSON_GetArraySize(facts), count);
    uint32_t k = 0;
    const cJSON *fact;
    cJSON_ArrayForEach(fact, facts)
    {
        assert_string_equal(strings[k], fact->valuestring);
        k++;
    }
}

static void assert_attr_matches(const char *name, const cJSON *facts, const cleval_onnx_attr *a)
{
    assert_non_null(a);
    const char *type = get(facts, "type")->valuestring;
    assert_string_equal(cleval_onnx_attr_type_name(a->type), type);
    if (a->type == CLEVAL_ONNX_ATTR_UNSUPPORTED) return;
    const cJSON *value = get(facts, "value");
    int k = 0;
    const cJSON *fact;
    switch (a->type) {
    case CLEVAL_ONNX_ATTR_FLOAT: assert_float_fact(value, a->f, name, 0); break;
    case CLEVAL_ONNX_ATTR_INT: assert_int_equal(a->i, (int64_t)value->valuedouble); break;
    case CLEVAL_ONNX_ATTR_STRING: assert_string_equal(a->s, value->valuestring); break;
    case CLEVAL_ONNX_ATTR_TENSOR: assert_tensor_matches(value, a->t); break;
    case CLEVAL_ONNX_ATTR_INTS: assert_i64_list(value, a->ints, a->count, name); break;
    case CLEVAL_ONNX_ATTR_STRINGS: assert_strings_match(value, a->strings, a->count, name); break;
    case CLEVAL_ONNX_ATTR_FLOATS:
        assert_int_equal(cJSON_GetArraySize(value), a->count);
        cJSON_ArrayForEach(fact, value)
        {
            assert_float_fact(fact, a->floats[k], name, k);
            k++;
        }
        break;
    default: fail_msg("attribute '%s': unexpected type %d", name, (int)a->type);
    }
}

static void assert_node_matches(const cJSON *facts, const cleval_onnx_node *node)
{
    assert_string_equal(node->name, get(facts, "name")->valuestring);
    assert_string_equal(node->op_type, get(facts, "op_type")->valuestring);
    assert_string_equal(node->domain, "");
    assert_strings_match(get(facts, "inputs"), node->inputs, node->n_inputs, node->name);
    assert_strings_match(get(facts, "outputs"), node->outputs, node->n_outputs, node->name);
    const cJSON *attrs = get(facts, "attrs");
    assert_int_equal(node->n_attrs, cJSON_GetArraySize(attrs));
    const cJSON *attr;
    cJSON_ArrayForEach(attr, attrs)
    {
        assert_attr_matches(attr->string, attr, cleval_onnx_node_attr(node, attr->string));
    }
}

static void assert_values_match(const cJSON *facts, const cleval_onnx_value *values, uint32_t count)
{
    assert_int_equal(count, cJSON_GetArraySize(facts));
    uint32_t k = 0;
    const cJSON *fact;
    cJSON_ArrayForEach(fact, facts)
    {
        const cleval_onnx_value *v = &values[k++];
        assert_string_equal(v->name, get(fact, "name")->valuestring);
        assert_int_equal(v->elem_type, get(fact, "elem_type")->valueint);
        assert_int_equal(v->has_shape, cJSON_IsTrue(get(fact, "has_shape")));
        assert_i64_list(get(fact, "dims"), v->dims, v->rank, v->name);
        const cJSON *params = get(fact, "dim_params");
        for (uint32_t d = 0; d < v->rank; d++) {
            const cJSON *param = cJSON_GetArrayItem(params, (int)d);
            if (cJSON_IsNull(param))
                assert_null(v->dim_params[d]);
            else
                assert_string_equal(v->dim_params[d], param->valuestring);
        }
    }
}

static void assert_model_matches(const cJSON *facts, const cleval_onnx_model *m)
{
    assert_int_equal(m->ir_version, get(facts, "ir_version")->valueint);
    assert_int_equal(m->opset, get(facts, "opset")->valueint);
    assert_string_equal(m->producer_name, get(facts, "producer_name")->valuestring);
    assert_string_equal(m->producer_version, get(facts, "producer_version")->valuestring);
    assert_string_equal(m->graph_name, get(facts, "graph_name")->valuestring);

    const cJSON *nodes = get(facts, "nodes");
    assert_int_equal(m->n_nodes, cJSON_GetArraySize(nodes));
    uint32_t k = 0;
    const cJSON *fact;
    cJSON_ArrayForEach(fact, nodes)
    {
        assert_node_matches(fact, &m->nodes[k++]);
    }

    const cJSON *inits = get(facts, "initializers");
    assert_int_equal(m->n_initializers, cJSON_GetArraySize(inits));
    k = 0;
    cJSON_ArrayForEach(fact, inits)
    {
        assert_tensor_matches(fact, &m->initializers[k]);
        assert_ptr_equal(cleval_onnx_find_initializer(m, get(fact, "name")->valuestring),
                         &m->initializers[k]);
        k++;
    }
    assert_values_match(get(facts, "inputs"), m->inputs, m->n_inputs);
    assert_values_match(get(facts, "outputs"), m->outputs, m->n_outputs);
    assert_values_match(get(facts, "value_infos"), m->value_infos, m->n_value_infos);
}

static void test_mlp_matches_onnx(void **state)
{
    (void)state;
    const char *path = reader_fixture("mlp.onnx");
    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(path, &m));
    assert_model_matches(get(get(expected, "models"), "mlp.onnx"), m);
    assert_string_equal(m->path, path);

    /* The facts the nn module leans on, spelled out. */
    assert_int_equal(m->n_inputs, 1); /* conv.weight is a graph input and an initializer */
    assert_string_equal(m->inputs[0].name, "input");
    assert_string_equal(m->nodes[2].name, "Relu_2");
    assert_string_equal(m->nodes[10].inputs[1], "");
    const cleval_onnx_tensor *shape = cleval_onnx_find_initializer(m, "flatten.shape");
    assert_non_null(shape);
    assert_int_equal(shape->storage, CLEVAL_ONNX_DATA_I64);
    assert_int_equal(shape->i64[0], -1);
    assert_int_equal(shape->i64[1], 32);
    const cleval_onnx_tensor *fc = cleval_onnx_find_initializer(m, "fc.weight"); /* external */
    assert_int_equal(fc->count, 320);
    assert_null(cleval_onnx_find_initializer(m, "missing"));
    assert_null(cleval_onnx_find_initializer(m, ""));
    assert_null(cleval_onnx_find_initializer(m, "c")); /* an activation, not a weight */

    const cleval_onnx_node *conv = &m->nodes[0];
    const int64_t *kernel;
    uint32_t n;
    assert_ok(cleval_onnx_attr_ints(conv, "kernel_shape", &kernel, &n));
    assert_int_equal(n, 2);
    assert_int_equal(kernel[1], 3);
    assert_ok(cleval_onnx_attr_ints(conv, "dilations", &kernel, &n));
    assert_null(kernel);
    assert_int_equal(n, 0);
    int64_t group;
    assert_ok(cleval_onnx_attr_int(conv, "group", 7, &group));
    assert_int_equal(group, 1);
    assert_ok(cleval_onnx_attr_int(conv, "absent", 7, &group));
    assert_int_equal(group, 7);
    const char *pad;
    assert_ok(cleval_onnx_attr_string(conv, "auto_pad", "x", &pad));
    assert_string_equal(pad, "NOTSET");
    float epsilon;
    assert_ok(cleval_onnx_attr_float(&m->nodes[1], "epsilon", 0, &epsilon));
    assert_true(epsilon == 1e-5f);
    const float *weights;
    assert_ok(cleval_onnx_attr_floats(&m->nodes[9], "weights", &weights, &n));
    assert_int_equal(n, 3);
    assert_true(weights[1] == -1.25f);

    /* A type mismatch names the node, the op and the attribute. */
    float wrong;
    assert_int_equal(cleval_onnx_attr_float(conv, "group", 0, &wrong), CLEVAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cleval_last_error(), "conv0"));
    assert_non_null(strstr(cleval_last_error(), "Conv"));
    assert_non_null(strstr(cleval_last_error(), "'group' is INT, expected FLOAT"));
    assert_int_equal(cleval_onnx_node_attr(&m->nodes[9], "bundle")->type,
                     CLEVAL_ONNX_ATTR_UNSUPPORTED);
    assert_null(cleval_onnx_node_attr(conv, "nope"));
    cleval_onnx_free(m);
}

static void test_types_and_newer_ir(void **state)
{
    (void)state;
    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(reader_fixture("types.onnx"), &m));
    assert_model_matches(get(get(expected, "models"), "types.onnx"), m);
    /* "ai.onnx" is the default domain under another name. */
    assert_string_equal(m->nodes[0].domain, "");
    assert_true(m->inputs[0].has_shape); /* a declared scalar */
    assert_int_equal(m->inputs[0].rank, 0);
    assert_false(m->outputs[0].has_shape);
    const cleval_onnx_tensor *empty = cleval_onnx_find_initializer(m, "empty");
    assert_int_equal(empty->count, 0);
    assert_non_null(empty->f32);
    assert_string_equal(cleval_onnx_dtype_name(cleval_onnx_find_initializer(m, "names")->dtype),
                        "string");
    cleval_onnx_free(m);
}

static void test_tensor_file(void **state)
{
    (void)state;
    cleval_onnx_tensor *t;
    assert_ok(cleval_onnx_load_tensor(reader_fixture("half_raw.pb"), &t));
    assert_tensor_matches(get(get(expected, "tensors"), "half_raw.pb"), t);
    cleval_onnx_tensor_free(t);
    cleval_onnx_tensor_free(NULL);
    cleval_onnx_free(NULL);
}

/* The status and a message that starts with the file and holds each of `words`. */
static void assert_refused(cleval_status status, cleval_status want, const char *path,
                           const cJSON *words)
{
    const char *msg = cleval_last_error();
    if (status != want)
        fail_msg("%s: status %d (%s), expected %d: %s", path, status, cleval_status_str(status),
                 want, msg);
    if (strncmp(msg, path, strlen(path)) != 0)
        fail_msg("message does not start with the file: %s", msg);
    if (strchr(msg, '\n')) fail_msg("message is not one line: %s", msg);
    const cJSON *word;
    cJSON_ArrayForEach(word, words)
    {
        if (!strstr(msg, word->valuestring))
            fail_msg("message lacks '%s': %s", word->valuestring, msg);
    }
}

static void test_bad_files(void **state)
{
    (void)state;
    const cJSON *bad;
    cJSON_ArrayForEach(bad, get(expected, "bad"))
    {
        const char *path = reader_fixture(get(bad, "file")->valuestring);
        const char *want = get(bad, "status")->valuestring;
        cleval_onnx_model *m = (cleval_onnx_model *)&m; /* must come back NULL */
        cleval_status status = cleval_onnx_load(path, &m);
        assert_null(m);
        assert_refused(status,
                       strcmp(want, "INPUT") == 0 ? CLEVAL_ERR_INPUT : CLEVAL_ERR_UNSUPPORTED, path,
                       get(bad, "words"));
    }
}

static void test_missing_and_odd_paths(void **state)
{
    (void)state;
    cJSON *none = cJSON_CreateArray();
    cleval_onnx_model *m;
    cleval_onnx_tensor *t;
    const char *missing = reader_fixture("no_such_model.onnx");
    assert_refused(cleval_onnx_load(missing, &m), CLEVAL_ERR_INPUT, missing, none);
    assert_non_null(strstr(cleval_last_error(), "No such file"));
    assert_refused(cleval_onnx_load_tensor(missing, &t), CLEVAL_ERR_INPUT, missing, none);
    assert_null(t);
    const char *dir = fixture_path("onnx_reader");
    assert_refused(cleval_onnx_load(dir, &m), CLEVAL_ERR_INPUT, dir, none);
    const char *empty = reader_fixture("empty.onnx");
    assert_refused(cleval_onnx_load_tensor(empty, &t), CLEVAL_ERR_INPUT, empty, none);
    assert_int_equal(cleval_onnx_load(NULL, &m), CLEVAL_ERR_USAGE);
    cJSON_Delete(none);
}

/* The model without its side file: the error names the tensor and the file it looked for. */
static void test_external_data_missing(void **state)
{
    (void)state;
    char *bytes = NULL;
    FILE *f = fopen(reader_fixture("mlp.onnx"), "rb");
    assert_non_null(f);
    bytes = malloc(1 << 16);
    size_t n = fread(bytes, 1, 1 << 16, f);
    fclose(f);
    const char *copy = temp_path("onnx_reader_mlp_alone.onnx");
    f = fopen(copy, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
    cleval_onnx_model *m;
    cJSON *words = cJSON_CreateArray();
    cJSON_AddItemToArray(words, cJSON_CreateString("initializer 'fc.weight'"));
    cJSON_AddItemToArray(words, cJSON_CreateString("mlp_weights.bin"));
    assert_refused(cleval_onnx_load(copy, &m), CLEVAL_ERR_INPUT, copy, words);
    cJSON_Delete(words);
    remove(copy);
}

/* Appends `value` as a protobuf varint. */
static size_t put_varint(uint8_t *p, uint64_t value)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
        value >>= 7;
    } while (value);
    return n;
}

static size_t varint_size(uint64_t value)
{
    uint8_t scratch[10];
    return put_varint(scratch, value);
}

/* A ModelProto whose graph nests `levels` If nodes, each holding the next graph in an
 * attribute: Graph.node(1) > Node{op_type(4) "If", attribute(5)} > Attr{name(1) "g",
 * type(20) GRAPH, g(6)} > Graph... Sizes are computed inside out, bytes written outside in. */
static uint8_t *nested_model(uint32_t levels, size_t *len)
{
    uint64_t *graph_size = calloc(levels + 1, sizeof *graph_size);
    uint64_t *attr_size = calloc(levels + 1, sizeof *attr_size);
    uint64_t *node_size = calloc(levels + 1, sizeof *node_size);
    assert_non_null(graph_size);
    assert_non_null(attr_size);
    assert_non_null(node_size);
    graph_size[levels] = 0; /* the innermost graph is empty */
    for (uint32_t i = levels; i-- > 0;) {
        attr_size[i] = 3 + 3 + 1 + varint_size(graph_size[i + 1]) + graph_size[i + 1];
        node_size[i] = 4 + 1 + varint_size(attr_size[i]) + attr_size[i];
        graph_size[i] = 1 + varint_size(node_size[i]) + node_size[i];
    }
    static const uint8_t header[] = {0x08, 0x08, 0x42, 0x02, 0x10, 0x0d}; /* ir 8, opset 13 */
    size_t total = sizeof header + 1 + varint_size(graph_size[0]) + graph_size[0];
    uint8_t *buf = malloc(total), *p = buf;
    assert_non_null(buf);
    memcpy(p, header, sizeof header);
    p += sizeof header;
    *p++ = 0x3a; /* ModelProto.graph */
    p += put_varint(p, graph_size[0]);
    for (uint32_t i = 0; i < levels; i++) {
        *p++ = 0x0a; /* GraphProto.node */
        p += put_varint(p, node_size[i]);
        memcpy(p, "\x22\x02If", 4);
        p += 4;
        *p++ = 0x2a; /* NodeProto.attribute */
        p += put_varint(p, attr_size[i]);
        memcpy(p, "\x0a\x01g\xa0\x01\x05", 6);
        p += 6;
        *p++ = 0x32; /* AttributeProto.g */
        p += put_varint(p, graph_size[i + 1]);
    }
    assert_int_equal((size_t)(p - buf), total);
    free(graph_size);
    free(attr_size);
    free(node_size);
    *len = total;
    return buf;
}

static void write_bytes(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Hostile nesting is refused before protobuf-c recurses into it; sane nesting parses and the
 * first subgraph is what gets refused. */
static void test_nesting_is_bounded(void **state)
{
    (void)state;
    size_t len;
    cleval_onnx_model *m;
    cJSON *words = cJSON_CreateArray();
    const char *path = temp_path("onnx_reader_nested.onnx");

    uint8_t *deep = nested_model(200000, &len);
    write_bytes(path, deep, len);
    free(deep);
    cJSON_AddItemToArray(words, cJSON_CreateString("nested more than"));
    assert_refused(cleval_onnx_load(path, &m), CLEVAL_ERR_INPUT, path, words);

    uint8_t *shallow = nested_model(30, &len); /* 1 + 3 * 30 = 91 levels */
    write_bytes(path, shallow, len);
    free(shallow);
    cJSON_DeleteItemFromArray(words, 0);
    cJSON_AddItemToArray(words, cJSON_CreateString("node 'If_0' (If): subgraph attribute 'g'"));
    assert_refused(cleval_onnx_load(path, &m), CLEVAL_ERR_UNSUPPORTED, path, words);
    cJSON_Delete(words);
    remove(path);
}

/* Every prefix of a valid model is refused cleanly or loads: never a crash or a leak. */
static void test_every_truncation(void **state)
{
    (void)state;
    FILE *f = fopen(reader_fixture("types.onnx"), "rb");
    assert_non_null(f);
    uint8_t bytes[4096];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    const char *path = temp_path("onnx_reader_prefix.onnx");
    for (size_t len = 0; len < n; len++) {
        write_bytes(path, bytes, len);
        cleval_onnx_model *m;
        cleval_status status = cleval_onnx_load(path, &m);
        if (status == CLEVAL_OK)
            cleval_onnx_free(m);
        else if (status != CLEVAL_ERR_INPUT)
            fail_msg("prefix of %zu bytes: status %d: %s", len, status, cleval_last_error());
    }
    remove(path);
}

/* Cases of ONNX's own conformance suite: the model's inputs and outputs, and its test tensors. */
static void test_conformance_cases(void **state)
{
    (void)state;
    const char *root = get(expected, "conformance_root")->valuestring;
    FILE *probe = fopen(root, "r");
    if (!probe) {
        print_message("%s missing (Debian package libonnx-testdata): skipped\n", root);
        skip();
    }
    fclose(probe);
    const cJSON *c;
    cJSON_ArrayForEach(c, get(expected, "conformance"))
    {
        char path[4096];
        const char *dir = get(c, "dir")->valuestring;
        snprintf(path, sizeof path, "%s/%s/model.onnx", root, dir);
        cleval_onnx_model *m;
        assert_ok(cleval_onnx_load(path, &m));
        assert_model_matches(get(c, "model"), m);
        cleval_onnx_free(m);
        const cJSON *facts;
        cJSON_ArrayForEach(facts, get(c, "tensors"))
        {
            snprintf(path, sizeof path, "%s/%s/%s", root, dir, get(facts, "file")->valuestring);
            cleval_onnx_tensor *t;
            assert_ok(cleval_onnx_load_tensor(path, &t));
            assert_tensor_matches(facts, t);
            cleval_onnx_tensor_free(t);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_matches_onnx),      cmocka_unit_test(test_types_and_newer_ir),
        cmocka_unit_test(test_tensor_file),           cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_and_odd_paths), cmocka_unit_test(test_external_data_missing),
        cmocka_unit_test(test_nesting_is_bounded),    cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_conformance_cases),
    };
    return cmocka_run_group_tests(tests, load_expected, free_expected);
}
