//! Community ID v1 test vectors, transcribed from `vectors.tsv` (shared test data) into this file so
//! the tests need nothing outside the repository.
//!
//! Sources (all BSD-3-Clause style licences):
//! - corelight/community-id-spec, `baseline/README.md` tables (commit c4ec2bc40d65ddbcbdd642582bf5609797a80772)
//!   and `baseline/baseline_{deflt,seed1,nob64}.json`: Copyright (c) 2017-2018 by Corelight, Inc.
//! - corelight/pycommunityid, `tests/communityid_test.py`: Copyright (c) 2017-2022 by Corelight, Inc.
//! - zeek/zeek, `testing/btest/bifs/community_id/v1.zeek`: Copyright (c) The Regents of the University
//!   of California, through Lawrence Berkeley National Laboratory, and the International Computer
//!   Science Institute.
//!
//! Only the values are copied; no code from those repositories. Columns: source, case, proto, saddr,
//! daddr, sport, dport, seed, expected base64, expected hex. Empty ports (port-less protocols) are
//! `None`. For ICMP/ICMPv6, sport is the type and dport the code, or (spec baseline JSON and Zeek rows)
//! the already mapped port equivalent.

use std::net::IpAddr;
use storyline_model::community_id::{compute, compute_hex, digest};

type Vector = (
    &'static str,
    u32,
    u8,
    &'static str,
    &'static str,
    Option<u16>,
    Option<u16>,
    u16,
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const VECTORS: [Vector; 122] = [
    ("spec-readme-table", 1, 6, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 0, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:c026f7386ef200559e95a53276ed03fb5db908b3"),
    ("spec-readme-table", 1, 6, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=", "1:1e103507ee82a0b6e228f12ce6784d60de1759f9"),
    ("spec-readme-table", 2, 6, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 0, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:c026f7386ef200559e95a53276ed03fb5db908b3"),
    ("spec-readme-table", 2, 6, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=", "1:1e103507ee82a0b6e228f12ce6784d60de1759f9"),
    ("spec-readme-table", 3, 17, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:d0cbbd227431eb3e1988264cffb1d78b658c84e8"),
    ("spec-readme-table", 3, 17, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw=", "1:39286afa228300c568ba1ff86ccc41f52cf86a6c"),
    ("spec-readme-table", 4, 17, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:d0cbbd227431eb3e1988264cffb1d78b658c84e8"),
    ("spec-readme-table", 4, 17, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw=", "1:39286afa228300c568ba1ff86ccc41f52cf86a6c"),
    ("spec-readme-table", 5, 132, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 0, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:10ab7832cc6ec9a13a98bfa19ab12443d72c0c3f"),
    ("spec-readme-table", 5, 132, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 1, "1:uitchpn5MMGAQKBJh7bIr/bAr7s=", "1:ba2b5c8699f930c18040a04987b6c8aff6c0afbb"),
    ("spec-readme-table", 6, 132, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 0, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:10ab7832cc6ec9a13a98bfa19ab12443d72c0c3f"),
    ("spec-readme-table", 6, 132, "5.6.7.8", "1.2.3.4", Some(3344), Some(1122), 1, "1:uitchpn5MMGAQKBJh7bIr/bAr7s=", "1:ba2b5c8699f930c18040a04987b6c8aff6c0afbb"),
    ("spec-readme-table", 7, 1, "1.2.3.4", "5.6.7.8", Some(8), Some(0), 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:72ba1d4472f6144b078dbbf752446b7dbb386d9d"),
    ("spec-readme-table", 7, 1, "1.2.3.4", "5.6.7.8", Some(8), Some(0), 1, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=", "1:f69af86464c80a2b99a0887dd114581364725e95"),
    ("spec-readme-table", 8, 1, "5.6.7.8", "1.2.3.4", Some(0), Some(0), 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:72ba1d4472f6144b078dbbf752446b7dbb386d9d"),
    ("spec-readme-table", 8, 1, "5.6.7.8", "1.2.3.4", Some(0), Some(0), 1, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=", "1:f69af86464c80a2b99a0887dd114581364725e95"),
    ("spec-readme-table", 9, 1, "1.2.3.4", "5.6.7.8", Some(11), Some(0), 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:7ff6224b25aa733ad381f5026650549ef1d170f9"),
    ("spec-readme-table", 9, 1, "1.2.3.4", "5.6.7.8", Some(11), Some(0), 1, "1:1DD7cWGC/Yg91YGsQeni8du3pIA=", "1:d430fb716182fd883dd581ac41e9e2f1dbb7a480"),
    ("spec-readme-table", 10, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(128), Some(0), 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:d1b7fb872309530b777cc103ef3f0b21f46905ea"),
    ("spec-readme-table", 10, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(128), Some(0), 1, "1:IO27GQzPuCtNnwFvjWALMHu5tJE=", "1:20edbb190ccfb82b4d9f016f8d600b307bb9b491"),
    ("spec-readme-table", 11, 58, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", Some(129), Some(0), 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:d1b7fb872309530b777cc103ef3f0b21f46905ea"),
    ("spec-readme-table", 11, 58, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", Some(129), Some(0), 1, "1:IO27GQzPuCtNnwFvjWALMHu5tJE=", "1:20edbb190ccfb82b4d9f016f8d600b307bb9b491"),
    ("spec-readme-table", 12, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(146), Some(0), 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:7d80bcfa9cf6e04f8484034fd44661a57d03c35d"),
    ("spec-readme-table", 12, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(146), Some(0), 1, "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s=", "1:0afe082897b9e813641743015b6631437370737b"),
    ("spec-readme-table", 13, 46, "1.2.3.4", "5.6.7.8", None, None, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:8a4bf79267fcf65b9fef758fcf58ceb38f52efaf"),
    ("spec-readme-table", 13, 46, "1.2.3.4", "5.6.7.8", None, None, 1, "1:/buhqeOmaRCopOZFy9HnoJd5XW8=", "1:fdbba1a9e3a66910a8a4e645cbd1e7a097795d6f"),
    ("spec-readme-table", 14, 46, "5.6.7.8", "1.2.3.4", None, None, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:8a4bf79267fcf65b9fef758fcf58ceb38f52efaf"),
    ("spec-readme-table", 14, 46, "5.6.7.8", "1.2.3.4", None, None, 1, "1:/buhqeOmaRCopOZFy9HnoJd5XW8=", "1:fdbba1a9e3a66910a8a4e645cbd1e7a097795d6f"),
    ("spec-readme-table", 15, 46, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", None, None, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:c10ff69b0ae75cfe259897077462f978f8d1f9ed"),
    ("spec-readme-table", 15, 46, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", None, None, 1, "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=", "1:8fa132c9f0732f8bd6287157814a9be40cf73b13"),
    ("spec-readme-table", 16, 46, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", None, None, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:c10ff69b0ae75cfe259897077462f978f8d1f9ed"),
    ("spec-readme-table", 16, 46, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", None, None, 1, "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=", "1:8fa132c9f0732f8bd6287157814a9be40cf73b13"),
    ("spec-baseline-json", 1, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(135), Some(136), 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
    ("spec-baseline-json", 1, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(135), Some(136), 1, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=", "1:9076b5161318213e989b6566d803ada0e0110f36"),
    ("spec-baseline-json", 2, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(136), Some(135), 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
    ("spec-baseline-json", 2, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(136), Some(135), 1, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=", "1:9076b5161318213e989b6566d803ada0e0110f36"),
    ("spec-baseline-json", 3, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(135), Some(136), 0, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:cdabf24ff71ecd0af57e6226602c189cc5db81c9"),
    ("spec-baseline-json", 3, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(135), Some(136), 1, "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=", "1:da14aa9ac0d9da475c63d91b894cce10189cd223"),
    ("spec-baseline-json", 4, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(136), Some(135), 0, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:cdabf24ff71ecd0af57e6226602c189cc5db81c9"),
    ("spec-baseline-json", 4, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(136), Some(135), 1, "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=", "1:da14aa9ac0d9da475c63d91b894cce10189cd223"),
    ("spec-baseline-json", 5, 58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some(3), Some(0), 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:d8e6d5060227dbca19be26d866164c06087b59d4"),
    ("spec-baseline-json", 5, 58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some(3), Some(0), 1, "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=", "1:95512d099a58bbce17a9a6befb7957172baeda7e"),
    ("spec-baseline-json", 6, 58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", Some(1), Some(4), 0, "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:84b65dd17196a23a33aefc6a13475607588ce91d"),
    ("spec-baseline-json", 6, 58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", Some(1), Some(4), 1, "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=", "1:5bc307c17a56ce9a124c3f9c19c689af8bb4cacf"),
    ("spec-baseline-json", 7, 58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", Some(128), Some(129), 0, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:f935be1ed2c7bd5d719c6855d65bfb5e826ba908"),
    ("spec-baseline-json", 7, 58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", Some(128), Some(129), 1, "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=", "1:19f6718c09039363247a0a4160757ab5a76d1574"),
    ("spec-baseline-json", 8, 58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some(129), Some(128), 0, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:f935be1ed2c7bd5d719c6855d65bfb5e826ba908"),
    ("spec-baseline-json", 8, 58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some(129), Some(128), 1, "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=", "1:19f6718c09039363247a0a4160757ab5a76d1574"),
    ("spec-baseline-json", 9, 58, "fe80::200:86ff:fe05:80da", "ff02::2", Some(133), Some(134), 0, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:84efac3781fe306e4c63ff2122b5cfa9ce19433d"),
    ("spec-baseline-json", 9, 58, "fe80::200:86ff:fe05:80da", "ff02::2", Some(133), Some(134), 1, "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=", "1:2fb29ad19318bbe2776cbe2e956d8faeac97368f"),
    ("spec-baseline-json", 10, 58, "fe80::260:97ff:fe07:69ea", "ff02::1", Some(134), Some(133), 0, "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:a64bc7a822fcf3fb60d64e1c3e282665752d2f4d"),
    ("spec-baseline-json", 10, 58, "fe80::260:97ff:fe07:69ea", "ff02::1", Some(134), Some(133), 1, "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=", "1:2bf79ee540aa00c0105c3a2b3f99d26b60862e37"),
    ("spec-baseline-json", 11, 1, "192.168.0.89", "192.168.0.1", Some(8), Some(0), 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
    ("spec-baseline-json", 11, 1, "192.168.0.89", "192.168.0.1", Some(8), Some(0), 1, "1:03g6IloqVBdcZlPyX8r0hgoE7kA=", "1:d3783a225a2a54175c6653f25fcaf4860a04ee40"),
    ("spec-baseline-json", 12, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(8), 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
    ("spec-baseline-json", 12, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(8), 1, "1:03g6IloqVBdcZlPyX8r0hgoE7kA=", "1:d3783a225a2a54175c6653f25fcaf4860a04ee40"),
    ("spec-baseline-json", 13, 1, "10.0.0.1", "10.0.0.2", Some(11), Some(0), 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:607c6d022ac21bfff43b391c540ba4a8a40df713"),
    ("spec-baseline-json", 13, 1, "10.0.0.1", "10.0.0.2", Some(11), Some(0), 1, "1:XjUibYHaafLQ3pxQeiMI8g25q20=", "1:5e35226d81da69f2d0de9c507a2308f20db9ab6d"),
    ("spec-baseline-json", 14, 6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", Some(63943), Some(25), 0, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:fea15a78047e8057b52988cccd50ec32ffb0814e"),
    ("spec-baseline-json", 14, 6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", Some(63943), Some(25), 1, "1:eJYTW6AOzFLlSUoESovMjnu7rMw=", "1:7896135ba00ecc52e5494a044a8bcc8e7bbbaccc"),
    ("spec-baseline-json", 15, 6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", Some(25), Some(63943), 0, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:fea15a78047e8057b52988cccd50ec32ffb0814e"),
    ("spec-baseline-json", 15, 6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", Some(25), Some(63943), 1, "1:eJYTW6AOzFLlSUoESovMjnu7rMw=", "1:7896135ba00ecc52e5494a044a8bcc8e7bbbaccc"),
    ("spec-baseline-json", 16, 132, "192.168.170.8", "192.168.170.56", Some(7), Some(7), 0, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:30fd84b5108050866f4f0e8cc491cb57b37b243b"),
    ("spec-baseline-json", 16, 132, "192.168.170.8", "192.168.170.56", Some(7), Some(7), 1, "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=", "1:e70dd946378a073a93df3b1a1040831a351b61e8"),
    ("spec-baseline-json", 17, 132, "192.168.170.56", "192.168.170.8", Some(7), Some(7), 0, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:30fd84b5108050866f4f0e8cc491cb57b37b243b"),
    ("spec-baseline-json", 17, 132, "192.168.170.56", "192.168.170.8", Some(7), Some(7), 1, "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=", "1:e70dd946378a073a93df3b1a1040831a351b61e8"),
    ("spec-baseline-json", 18, 6, "128.232.110.120", "66.35.250.204", Some(34855), Some(80), 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
    ("spec-baseline-json", 18, 6, "128.232.110.120", "66.35.250.204", Some(34855), Some(80), 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=", "1:dd5ef5579f0cdcab30ff2b8500b31c5b42c01ef7"),
    ("spec-baseline-json", 19, 6, "66.35.250.204", "128.232.110.120", Some(80), Some(34855), 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
    ("spec-baseline-json", 19, 6, "66.35.250.204", "128.232.110.120", Some(80), Some(34855), 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=", "1:dd5ef5579f0cdcab30ff2b8500b31c5b42c01ef7"),
    ("spec-baseline-json", 20, 17, "192.168.1.52", "8.8.8.8", Some(54585), Some(53), 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:77f14fe445b7c22635bc29dd87095e451287a304"),
    ("spec-baseline-json", 20, 17, "192.168.1.52", "8.8.8.8", Some(54585), Some(53), 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=", "1:43d59ef163b7a62545f3211004d245e2e89256b2"),
    ("spec-baseline-json", 21, 17, "8.8.8.8", "192.168.1.52", Some(53), Some(54585), 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:77f14fe445b7c22635bc29dd87095e451287a304"),
    ("spec-baseline-json", 21, 17, "8.8.8.8", "192.168.1.52", Some(53), Some(54585), 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=", "1:43d59ef163b7a62545f3211004d245e2e89256b2"),
    ("spec-baseline-json", 22, 46, "10.1.12.1", "10.1.12.2", None, None, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:28794b920a095bb89f513c934a0c957e4147ccac"),
    ("spec-baseline-json", 22, 46, "10.1.12.1", "10.1.12.2", None, None, 1, "1:rYir8gphR31noO9iDRQmF/BteEI=", "1:ad88abf20a61477d67a0ef620d142617f06d7842"),
    ("spec-baseline-json", 23, 46, "10.1.12.2", "10.1.12.1", None, None, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:28794b920a095bb89f513c934a0c957e4147ccac"),
    ("spec-baseline-json", 23, 46, "10.1.12.2", "10.1.12.1", None, None, 1, "1:rYir8gphR31noO9iDRQmF/BteEI=", "1:ad88abf20a61477d67a0ef620d142617f06d7842"),
    ("pycommunityid-test", 1, 1, "192.168.0.89", "192.168.0.1", Some(8), Some(0), 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
    ("pycommunityid-test", 1, 1, "192.168.0.89", "192.168.0.1", Some(8), Some(0), 1, "1:03g6IloqVBdcZlPyX8r0hgoE7kA=", "1:d3783a225a2a54175c6653f25fcaf4860a04ee40"),
    ("pycommunityid-test", 2, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(8), 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
    ("pycommunityid-test", 2, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(8), 1, "1:03g6IloqVBdcZlPyX8r0hgoE7kA=", "1:d3783a225a2a54175c6653f25fcaf4860a04ee40"),
    ("pycommunityid-test", 3, 1, "192.168.0.89", "192.168.0.1", Some(20), Some(0), 0, "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=", "1:de8d9115c717cd482397bcc3a6a998ef2262f2b2"),
    ("pycommunityid-test", 3, 1, "192.168.0.89", "192.168.0.1", Some(20), Some(0), 1, "1:lCXHHxavE1Vq3oX9NH5ladQg02o=", "1:9425c71f16af13556ade85fd347e6569d420d36a"),
    ("pycommunityid-test", 4, 1, "192.168.0.89", "192.168.0.1", Some(20), Some(1), 0, "1:tz/fHIDUHs19NkixVVoOZywde+I=", "1:b73fdf1c80d41ecd7d3648b1555a0e672c1d7be2"),
    ("pycommunityid-test", 4, 1, "192.168.0.89", "192.168.0.1", Some(20), Some(1), 1, "1:Ie3wmFyxiEyikbsbcO03d2nh+PM=", "1:21edf0985cb1884ca291bb1b70ed377769e1f8f3"),
    ("pycommunityid-test", 5, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(20), 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
    ("pycommunityid-test", 5, 1, "192.168.0.1", "192.168.0.89", Some(0), Some(20), 1, "1:03g6IloqVBdcZlPyX8r0hgoE7kA=", "1:d3783a225a2a54175c6653f25fcaf4860a04ee40"),
    ("pycommunityid-test", 6, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(135), Some(0), 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
    ("pycommunityid-test", 6, 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some(135), Some(0), 1, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=", "1:9076b5161318213e989b6566d803ada0e0110f36"),
    ("pycommunityid-test", 7, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(136), Some(0), 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
    ("pycommunityid-test", 7, 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some(136), Some(0), 1, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=", "1:9076b5161318213e989b6566d803ada0e0110f36"),
    ("pycommunityid-test", 8, 58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", Some(3), Some(0), 0, "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=", "1:35da1b0d7f0f40d25b0327e45b186d2f63eaa79c"),
    ("pycommunityid-test", 8, 58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", Some(3), Some(0), 1, "1:OlOWx9psIbBFi7lOCw/4MhlKR9M=", "1:3a5396c7da6c21b0458bb94e0b0ff832194a47d3"),
    ("pycommunityid-test", 9, 58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", Some(3), Some(0), 0, "1:/OGBt9BN1ofenrmSPWYicpij2Vc=", "1:fce181b7d04dd687de9eb9923d66227298a3d957"),
    ("pycommunityid-test", 9, 58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", Some(3), Some(0), 1, "1:Ij4ZxnC87/MXzhOjvH2vHu7LRmE=", "1:223e19c670bceff317ce13a3bc7daf1eeecb4661"),
    ("pycommunityid-test", 10, 132, "192.168.170.8", "192.168.170.56", Some(7), Some(80), 0, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:8d0802c5b92efa9346c3c58f6c473f4d2fee4e94"),
    ("pycommunityid-test", 10, 132, "192.168.170.8", "192.168.170.56", Some(7), Some(80), 1, "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU=", "1:635ff48d083a7be237670659f4b3fae4335b4d75"),
    ("pycommunityid-test", 11, 132, "192.168.170.56", "192.168.170.8", Some(80), Some(7), 0, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:8d0802c5b92efa9346c3c58f6c473f4d2fee4e94"),
    ("pycommunityid-test", 11, 132, "192.168.170.56", "192.168.170.8", Some(80), Some(7), 1, "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU=", "1:635ff48d083a7be237670659f4b3fae4335b4d75"),
    ("pycommunityid-test", 12, 6, "128.232.110.120", "66.35.250.204", Some(34855), Some(80), 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
    ("pycommunityid-test", 12, 6, "128.232.110.120", "66.35.250.204", Some(34855), Some(80), 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=", "1:dd5ef5579f0cdcab30ff2b8500b31c5b42c01ef7"),
    ("pycommunityid-test", 13, 6, "66.35.250.204", "128.232.110.120", Some(80), Some(34855), 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
    ("pycommunityid-test", 13, 6, "66.35.250.204", "128.232.110.120", Some(80), Some(34855), 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=", "1:dd5ef5579f0cdcab30ff2b8500b31c5b42c01ef7"),
    ("pycommunityid-test", 14, 6, "10.0.0.1", "10.0.0.2", Some(10), Some(11569), 0, "1:SXBGMX1lBOwhhoDrZynfROxnhnM=", "1:497046317d6504ec218680eb6729df44ec678673"),
    ("pycommunityid-test", 14, 6, "10.0.0.1", "10.0.0.2", Some(10), Some(11569), 1, "1:HmBRGR+fUyXF4t8WEtal7Y0gEAo=", "1:1e6051191f9f5325c5e2df1612d6a5ed8d20100a"),
    ("pycommunityid-test", 15, 17, "192.168.1.52", "8.8.8.8", Some(54585), Some(53), 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:77f14fe445b7c22635bc29dd87095e451287a304"),
    ("pycommunityid-test", 15, 17, "192.168.1.52", "8.8.8.8", Some(54585), Some(53), 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=", "1:43d59ef163b7a62545f3211004d245e2e89256b2"),
    ("pycommunityid-test", 16, 17, "8.8.8.8", "192.168.1.52", Some(53), Some(54585), 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:77f14fe445b7c22635bc29dd87095e451287a304"),
    ("pycommunityid-test", 16, 17, "8.8.8.8", "192.168.1.52", Some(53), Some(54585), 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=", "1:43d59ef163b7a62545f3211004d245e2e89256b2"),
    ("pycommunityid-test", 17, 46, "10.1.24.4", "10.1.12.1", None, None, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:fe7408e1187f4ed63799fd11da0245064565812e"),
    ("pycommunityid-test", 17, 46, "10.1.24.4", "10.1.12.1", None, None, 1, "1:BK3BVW3U2eemuwVQVN3zd/GULno=", "1:04adc1556dd4d9e7a6bb055054ddf377f1942e7a"),
    ("pycommunityid-test", 18, 46, "10.1.12.1", "10.1.24.4", None, None, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:fe7408e1187f4ed63799fd11da0245064565812e"),
    ("pycommunityid-test", 18, 46, "10.1.12.1", "10.1.24.4", None, None, 1, "1:BK3BVW3U2eemuwVQVN3zd/GULno=", "1:04adc1556dd4d9e7a6bb055054ddf377f1942e7a"),
    ("zeek-btest", 1, 6, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 0, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:c026f7386ef200559e95a53276ed03fb5db908b3"),
    ("zeek-btest", 2, 17, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:d0cbbd227431eb3e1988264cffb1d78b658c84e8"),
    ("zeek-btest", 3, 1, "1.2.3.4", "5.6.7.8", Some(8), Some(0), 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:72ba1d4472f6144b078dbbf752446b7dbb386d9d"),
    ("zeek-btest", 4, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(128), Some(129), 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:d1b7fb872309530b777cc103ef3f0b21f46905ea"),
    ("zeek-btest", 5, 6, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=", "1:1e103507ee82a0b6e228f12ce6784d60de1759f9"),
    ("zeek-btest", 6, 17, "1.2.3.4", "5.6.7.8", Some(1122), Some(3344), 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw=", "1:39286afa228300c568ba1ff86ccc41f52cf86a6c"),
    ("zeek-btest", 7, 1, "1.2.3.4", "5.6.7.8", Some(8), Some(0), 1, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=", "1:f69af86464c80a2b99a0887dd114581364725e95"),
    ("zeek-btest", 8, 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some(128), Some(129), 1, "1:IO27GQzPuCtNnwFvjWALMHu5tJE=", "1:20edbb190ccfb82b4d9f016f8d600b307bb9b491"),
];

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("bad address {text:?}: {e}"))
}

#[test]
fn every_vector_matches_base64_and_hex() {
    let mut failures = Vec::new();
    for (source, case, proto, saddr, daddr, sport, dport, seed, b64, hex) in VECTORS {
        let (s, d) = (ip(saddr), ip(daddr));
        let got_b64 = compute(proto, s, d, sport, dport, seed);
        let got_hex = compute_hex(proto, s, d, sport, dport, seed);
        if got_b64 != b64 || got_hex != hex {
            failures.push(format!(
                "{source} #{case} seed {seed}: got {got_b64} / {got_hex}, want {b64} / {hex}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        VECTORS.len(),
        failures.join("\n")
    );
}

#[test]
fn hex_and_base64_encode_the_same_digest() {
    use base64::Engine;
    for (source, case, proto, saddr, daddr, sport, dport, seed, b64, hex) in VECTORS {
        let raw = digest(proto, ip(saddr), ip(daddr), sport, dport, seed);
        let from_b64 = base64::engine::general_purpose::STANDARD
            .decode(b64.strip_prefix("1:").unwrap())
            .unwrap();
        let hex_text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(from_b64, raw, "{source} #{case}: base64 digest");
        assert_eq!(hex, format!("1:{hex_text}"), "{source} #{case}: hex digest");
    }
}

#[test]
fn vector_table_is_complete() {
    assert_eq!(VECTORS.len(), 122);
    for source in [
        "spec-readme-table",
        "spec-baseline-json",
        "pycommunityid-test",
        "zeek-btest",
    ] {
        assert!(
            VECTORS.iter().any(|v| v.0 == source),
            "no rows from {source}"
        );
    }
}

#[test]
fn ipv6_text_forms_are_parsed_not_compared() {
    // The spec tables write IPv6 with leading zeros and capitals; the compact form must hash alike.
    let long = ip("fe80:0001:0203:0405:0607:0809:0A0B:0C0D");
    let short = ip("fe80:1:203:405:607:809:a0b:c0d");
    let peer = ip("fe80:1011:1213:1415:1617:1819:1a1b:1c1d");
    assert_eq!(
        compute(58, long, peer, Some(128), Some(0), 0),
        compute(58, short, peer, Some(128), Some(0), 0)
    );
}

#[test]
fn port_less_protocols_ignore_ports() {
    // RSVP has no ports: giving some must not change the id (only addresses, proto and pad are hashed).
    let (s, d) = (ip("1.2.3.4"), ip("5.6.7.8"));
    assert_eq!(
        compute(46, s, d, None, None, 0),
        compute(46, s, d, Some(1122), Some(3344), 0)
    );
    assert_eq!(
        compute(46, s, d, None, None, 0),
        "1:ikv3kmf89luf73WPz1jOs49S768="
    );
}

#[test]
fn mapping_is_idempotent_for_icmp() {
    // (type, code) and (type, counterpart) give the same id; one-way types keep their direction.
    let (s, d) = (ip("192.168.0.89"), ip("192.168.0.1"));
    assert_eq!(
        compute(1, s, d, Some(8), Some(0), 0),
        compute(1, s, d, Some(8), Some(5), 0)
    );
    assert_eq!(
        compute(1, d, s, Some(0), Some(0), 0),
        compute(1, d, s, Some(0), Some(8), 0)
    );
    assert_eq!(
        compute(1, s, d, Some(8), Some(0), 0),
        compute(1, d, s, Some(0), Some(8), 0)
    );
    assert_ne!(
        compute(1, s, d, Some(11), Some(0), 0),
        compute(1, d, s, Some(11), Some(0), 0)
    );
    let (a, b) = (ip("fe80::1"), ip("fe80::2"));
    assert_eq!(
        compute(58, a, b, Some(139), Some(0), 0),
        compute(58, b, a, Some(140), Some(7), 0)
    );
    assert_ne!(
        compute(58, a, b, Some(146), Some(0), 0),
        compute(58, b, a, Some(146), Some(0), 0)
    );
}
