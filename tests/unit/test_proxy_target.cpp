// The forward proxy's reading of Proxy-Uri and Proxy-Scheme (relay/proxy_target.h): what a
// client can make the relay try to reach. The relay then serves only targets that are a known
// node's own address; everything refused here is a 5.05 without anything being sent.

#include "relay/proxy_target.h"

#include <gtest/gtest.h>

namespace coap_edge::relay {
namespace {

coap::Request proxyUri(std::string uri) {
  coap::Request r;
  r.proxy_uri = std::move(uri);
  return r;
}

TEST(ProxyTarget, ReadsSchemeHostPortPathAndQuery) {
  const auto t = proxyTarget(proxyUri("coap://192.0.2.5:5699/sensors/temp?rt=x&a=b"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->scheme, "coap");
  EXPECT_EQ(t->host, "192.0.2.5");
  EXPECT_EQ(t->port, 5699);
  EXPECT_EQ(t->segments, (std::vector<std::string>{"sensors", "temp"}));
  EXPECT_EQ(t->query, "rt=x&a=b");
  const auto v6 = proxyTarget(proxyUri("coap://[2001:db8::1]/a%20b"));
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_FALSE(v6->port);
  EXPECT_EQ(v6->segments, (std::vector<std::string>{"a b"}));
}

TEST(ProxyTarget, RefusesWhatIsMalformedOrTooLong) {
  for (const std::string bad :
       {"coap:/x", "://host/x", "coap://host:0/x", "coap://host:65536/x", "coap://host:12a/x", "coap://user@host/x",
        "coap://[2001:db8::1/x", "coap:///x", "coap://host/a%2Fb", "coap://host/a%zz", "coap://host/x#frag"}) {
    EXPECT_FALSE(proxyTarget(proxyUri(bad))) << bad;
  }
  // CVE-2025-34468: an overlong host on the proxy path.
  EXPECT_FALSE(proxyTarget(proxyUri("coap://" + std::string(256, 'h') + "/x")));
  EXPECT_TRUE(proxyTarget(proxyUri("coap://" + std::string(255, 'h') + "/x")));
  EXPECT_FALSE(proxyTarget(proxyUri("coap://h/" + std::string(kMaxProxyUri, 'x'))));
  coap::Request none;
  EXPECT_FALSE(proxyTarget(none));
}

TEST(ProxyTarget, ProxySchemeTakesHostPortAndTheRequestsOwnPath) {
  coap::Request r;
  r.proxy_scheme = "coap";
  r.uri_host = "node.local";
  r.uri_port = 5683;
  r.path = "sensors/temp";
  r.query = "x=1";
  const auto t = proxyTarget(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "node.local");
  EXPECT_EQ(t->port, 5683);
  EXPECT_EQ(t->segments, (std::vector<std::string>{"sensors", "temp"}));
  EXPECT_EQ(t->query, "x=1");
  r.uri_host = std::string(300, 'h');
  EXPECT_FALSE(proxyTarget(r));
  r.uri_host.clear();
  EXPECT_FALSE(proxyTarget(r));
}

TEST(ProxyTarget, PathSegmentsSurviveEncodingAndDecoding) {
  for (const std::string& raw : {std::string("plain"), std::string("a b"), std::string("%"), std::string("\xff\x01", 2),
                                std::string("x?y#z")}) {
    const auto back = decodePathSegments(encodePathSegment(raw));
    ASSERT_TRUE(back) << raw;
    EXPECT_EQ(*back, std::vector<std::string>{raw});
  }
  EXPECT_EQ(*decodePathSegments(""), std::vector<std::string>{""});
  EXPECT_FALSE(decodePathSegments("a/%2f"));
}

}  // namespace
}  // namespace coap_edge::relay
