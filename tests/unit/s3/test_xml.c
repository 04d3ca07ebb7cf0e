/* Unit tests of the S3 endpoint's XML: the strict reader of CompleteMultipartUpload and the
 * escaping of what answers echo. Static functions are reached by including the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../src/s3/xml.c"

/* parses a CompleteMultipartUpload document; the arena is released by done() */
static int complete(struct arena *a, const char *xml, struct store_part_ref **refs, size_t *n,
                    struct err *e)
{
    arena_init(a);
    return s3__complete_parse(a, xml, strlen(xml), refs, n, e);
}

static void test_complete_xml(void **state)
{
    static const char *const docs[] = {
        /* as botocore writes it */
        "<?xml version=\"1.0\"?><CompleteMultipartUpload xmlns=\"x\">"
        "<Part><ETag>\"aa\"</ETag><PartNumber>1</PartNumber></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag>"
        "<ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>",
        /* as Go's encoding/xml writes it (rclone) */
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part>"
        "<ETag>&#34;aa&#34;</ETag><PartNumber>1</PartNumber></Part><Part><ETag>&#x22;bb&#x22;"
        "</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>",
        /* BOM, declaration, comments, a processing instruction, prefixes, CDATA, spaces */
        "\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n<!-- a -->\n"
        "<?app data?><s3:CompleteMultipartUpload xmlns:s3=\"x\" a=\"&amp;&#60;\">\n"
        "  <s3:Part><s3:PartNumber> 1 </s3:PartNumber><s3:ETag><![CDATA[\"aa\"]]></s3:ETag>"
        "</s3:Part>\r\n  <!-- b --><s3:Part><s3:PartNumber>2</s3:PartNumber>"
        "<s3:ETag>b<!-- c -->b</s3:ETag><Extra/></s3:Part><Other>ignored</Other>"
        "</s3:CompleteMultipartUpload >\n<!-- after -->\n",
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(docs); i++) {
        struct arena a;
        struct store_part_ref *refs;
        size_t n = 0;
        struct err e = {0};

        assert_int_equal(complete(&a, docs[i], &refs, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_int_equal(refs[0].number, 1);
        assert_string_equal(refs[0].etag, "aa");
        assert_int_equal(refs[1].number, 2);
        assert_string_equal(refs[1].etag, "bb");
        arena_release(&a);
    }
}

static void test_complete_many_parts(void **state)
{
    struct arena a;
    struct store_part_ref *refs;
    size_t n = 0;
    struct err e = {0};
    struct buf x;
    int status;
    const char *msg;

    (void)state;
    buf_init(&x, 0);
    /* pretty-printed: the white space between parts is far more than an element's text */
    buf_adds(&x, "<CompleteMultipartUpload>\n", NULL);
    for (int i = 1; i <= STORE_PART_MAX; i++)
        buf_addf(&x, NULL,
                 "  <Part>\n    <PartNumber>%d</PartNumber>\n    <ETag>e%d</ETag>\n  </Part>\n", i,
                 i);
    buf_adds(&x, "</CompleteMultipartUpload>", NULL);
    assert_int_equal(complete(&a, x.buf, &refs, &n, &e), 0);
    assert_int_equal(n, STORE_PART_MAX);
    assert_int_equal(refs[9999].number, 10000);
    assert_string_equal(refs[9999].etag, "e10000");
    arena_release(&a);
    x.len -= strlen("</CompleteMultipartUpload>");
    buf_adds(&x, "<Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>", NULL);
    buf_adds(&x, "</CompleteMultipartUpload>", NULL);
    assert_int_equal(complete(&a, x.buf, &refs, &n, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 400);
    arena_release(&a);
    buf_release(&x);
}

#define CMU(parts) "<CompleteMultipartUpload>" parts "</CompleteMultipartUpload>"
#define PART       "<Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"

static void test_complete_malformed(void **state)
{
    static const struct {
        const char *xml;
        const char *code;
    } bad[] = {
        {"", "MalformedXML"},
        {"   ", "MalformedXML"},
        {"<Foo/>", "MalformedXML"},
        {CMU(""), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>a</ETag>"), "MalformedXML"},
        {"<CompleteMultipartUpload>" PART, "MalformedXML"},
        {CMU("<Part><ETag>a</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>"), "InvalidArgument"},
        {CMU("<Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>"), "InvalidArgument"},
        {CMU("<Part><PartNumber>x1</PartNumber><ETag>a</ETag></Part>"), "InvalidArgument"},
        {CMU("<Part><PartNumber>99999999999999999999999</PartNumber><ETag>a</ETag></Part>"),
         "InvalidArgument"},
        /* not well-formed */
        {CMU("<Part><PartNumber>1</PartNumber><ETag>a</Etag></Part>"), "MalformedXML"},
        {CMU(PART) "<CompleteMultipartUpload/>", "MalformedXML"},
        {CMU(PART) "text", "MalformedXML"},
        {"text" CMU(PART), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&foo;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&amp</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>a & b</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#0;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#xD800;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#x110000;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#xFFFE;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#x;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>&#12a;</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>a]]>b</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag><![CDATA[a</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>\x01</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>\xff</ETag></Part>"), "MalformedXML"},
        {CMU("<Part><PartNumber>1</PartNumber><ETag>\xc0\xa2</ETag></Part>"), "MalformedXML"},
        {CMU("<!-- a -- b -->" PART), "MalformedXML"},
        {CMU("<!-- a" PART), "MalformedXML"},
        {"<!DOCTYPE x [<!ENTITY e \"aa\">]>" CMU(PART), "MalformedXML"},
        {CMU("<!DOCTYPE x>" PART), "MalformedXML"},
        {"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" CMU(PART), "MalformedXML"},
        {" <?xml version=\"1.0\"?>" CMU(PART), "MalformedXML"},
        {CMU("<?xml version=\"1.0\"?>" PART), "MalformedXML"},
        {"<CompleteMultipartUpload a=\"1\" a=\"2\">" PART "</CompleteMultipartUpload>",
         "MalformedXML"},
        {"<CompleteMultipartUpload a=1>" PART "</CompleteMultipartUpload>", "MalformedXML"},
        {"<CompleteMultipartUpload a=\"<\">" PART "</CompleteMultipartUpload>", "MalformedXML"},
        {"<CompleteMultipartUpload a=\"1\"b=\"2\">" PART "</CompleteMultipartUpload>",
         "MalformedXML"},
        {"<CompleteMultipartUpload a>" PART "</CompleteMultipartUpload>", "MalformedXML"},
        {"<CompleteMultipartUpload" PART "</CompleteMultipartUpload>", "MalformedXML"},
        {"<1CompleteMultipartUpload>" PART "</1CompleteMultipartUpload>", "MalformedXML"},
        {"<CompleteMultipartUpload>" PART "</CompleteMultipartUpload", "MalformedXML"},
        {"</CompleteMultipartUpload>", "MalformedXML"},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct arena a;
        struct store_part_ref *refs = NULL;
        size_t n = 0;
        struct err e = {0};
        int status;
        const char *msg;

        if (complete(&a, bad[i].xml, &refs, &n, &e) != -1)
            fail_msg("accepted: %s", bad[i].xml);
        assert_true(e.code == ERR_INVALID || e.code == ERR_LIMIT);
        if (strcmp(s3_error_code(&e, &status, &msg), bad[i].code) != 0)
            fail_msg("%s: %s", bad[i].xml, e.msg);
        assert_int_equal(status, 400);
        arena_release(&a);
    }
}

/* parses xml and returns the root's text, or NULL with e set */
static const char *root_text(struct arena *a, const char *xml, size_t n, struct err *e)
{
    struct s3_xml_node *root;

    if (s3__xml_parse(a, xml, n, &root, e) < 0)
        return NULL;
    return root->text;
}

static void test_limits(void **state)
{
    struct arena a;
    struct err e = {0};
    struct buf x;

    (void)state;
    arena_init(&a);
    /* nesting */
    for (int depth = S3_XML_DEPTH_MAX; depth <= S3_XML_DEPTH_MAX + 1; depth++) {
        buf_init(&x, 0);
        for (int i = 0; i < depth; i++)
            buf_adds(&x, "<a>", NULL);
        for (int i = 0; i < depth; i++)
            buf_adds(&x, "</a>", NULL);
        assert_int_equal(root_text(&a, x.buf, x.len, &e) != NULL, depth == S3_XML_DEPTH_MAX);
        buf_release(&x);
    }
    assert_int_equal(e.code, ERR_LIMIT);
    /* names */
    for (int len = S3_XML_NAME_MAX; len <= S3_XML_NAME_MAX + 1; len++) {
        buf_init(&x, 0);
        buf_addf(&x, NULL, "<%0*d/>", len, 0);
        x.buf[1] = 'n';
        assert_int_equal(root_text(&a, x.buf, x.len, &e) != NULL, len == S3_XML_NAME_MAX);
        buf_release(&x);
    }
    /* text, also when it is made of references and CDATA */
    for (int len = S3_XML_TEXT_MAX; len <= S3_XML_TEXT_MAX + 1; len++) {
        const char *t;

        buf_init(&x, 0);
        buf_adds(&x, "<a>&amp;<![CDATA[b]]>", NULL);
        for (int i = 2; i < len; i++)
            buf_adds(&x, i % 2 ? "&#x63;" : "d", NULL);
        buf_adds(&x, "</a>", NULL);
        t = root_text(&a, x.buf, x.len, &e);
        assert_int_equal(t != NULL, len == S3_XML_TEXT_MAX);
        if (t)
            assert_int_equal(strlen(t), S3_XML_TEXT_MAX);
        buf_release(&x);
    }
    assert_int_equal(e.code, ERR_LIMIT);
    /* attributes */
    for (int count = S3_XML_ATTR_MAX; count <= S3_XML_ATTR_MAX + 1; count++) {
        buf_init(&x, 0);
        buf_adds(&x, "<a", NULL);
        for (int i = 0; i < count; i++)
            buf_addf(&x, NULL, " a%d='&lt;%d'", i, i);
        buf_adds(&x, "/>", NULL);
        assert_int_equal(root_text(&a, x.buf, x.len, &e) != NULL, count == S3_XML_ATTR_MAX);
        buf_release(&x);
    }
    arena_release(&a);
}

static void test_references(void **state)
{
    struct arena a;
    struct err e = {0};
    const char *doc = "<a>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#xe9;&#x20AC;&#x1F3AC;&#9;&#10;"
                      "&#13;</a>";

    (void)state;
    arena_init(&a);
    assert_string_equal(root_text(&a, doc, strlen(doc), &e),
                        "<>&\"'AB\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xac\t\n\r");
    /* the NUL of a byte count is text too: a document with a NUL is not XML */
    assert_null(root_text(&a, "<a>b\0c</a>", 10, &e));
    arena_release(&a);
}

static const char *xml_of(struct buf *b, const char *s, size_t n, int url)
{
    buf_reset(b);
    s3__xml_text(b, s, n, url);
    buf_adds(b, "", NULL);
    return b->buf;
}

static void test_text_out(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    assert_string_equal(xml_of(&b, "a&b<c>d\"e'f", 11, 0), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    assert_string_equal(xml_of(&b, "t\tn\nr\r", 6, 0), "t&#9;n&#10;r&#13;");
    assert_string_equal(xml_of(&b,
                               "\xc3\xb1"
                               "and\xc3\xba",
                               7, 0),
                        "\xc3\xb1"
                        "and\xc3\xba");
    /* what XML cannot carry becomes U+FFFD */
    assert_string_equal(xml_of(&b, "probe/\xff\xfe", 8, 0), "probe/\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(xml_of(&b,
                               "a\xc0\xaf"
                               "b",
                               4, 0),
                        "a\xef\xbf\xbd\xef\xbf\xbd"
                        "b");
    assert_string_equal(xml_of(&b, "\x01\x1f", 2, 0), "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(xml_of(&b, "\xef\xbf\xbe", 3, 0), "\xef\xbf\xbd");
    assert_string_equal(xml_of(&b, "a\xe2\x82", 3, 0), "a\xef\xbf\xbd\xef\xbf\xbd");
    /* url encoding carries every byte */
    assert_string_equal(xml_of(&b, "a b+c/d%\xff\x01~-_.", 14, 1), "a%20b%2Bc/d%25%FF%01~-_.");
    assert_true(s3__xml_exact("a\tb\xc3\xb1", 5));
    assert_false(s3__xml_exact("a\x01", 2));
    assert_false(s3__xml_exact("\xff", 1));
    assert_false(s3__xml_exact("\xef\xbf\xbf", 3));
    buf_release(&b);
}

/* whatever the writer makes of any bytes parses, and exact text comes back unchanged */
static void test_round_trip(void **state)
{
    static const char alphabet[] = "ab<>&\"' \t\n\r\x01\x7f\xc3\xb1\xff\xef\xbf\xbe\xe2\x82\xac]";
    uint32_t seed = 12345;
    struct buf doc;

    (void)state;
    buf_init(&doc, 0);
    for (int round = 0; round < 2000; round++) {
        char s[64];
        size_t n = (size_t)(round % 40);
        struct arena a;
        struct err e = {0};
        const char *back;

        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        buf_reset(&doc);
        buf_adds(&doc, "<k>", NULL);
        s3__xml_text(&doc, s, n, 0);
        buf_adds(&doc, "</k>", NULL);
        arena_init(&a);
        back = root_text(&a, doc.buf, doc.len, &e);
        if (!back)
            fail_msg("round %d: %s", round, e.msg);
        if (s3__xml_exact(s, n)) {
            assert_int_equal(strlen(back), n);
            assert_memory_equal(back, s, n);
        }
        arena_release(&a);
    }
    buf_release(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_xml),       cmocka_unit_test(test_complete_many_parts),
        cmocka_unit_test(test_complete_malformed), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_references),         cmocka_unit_test(test_text_out),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("xml", tests, NULL, NULL);
}
