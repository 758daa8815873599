//! The simulated enterprise: client workstations on 10.x, a data center and a DMZ inside, popular
//! servers on the internet, one internal DNS resolver, and a firewall with a small pool of public NAT
//! addresses. Built once from the seed; sessions then pick their endpoints from it.

use rand::rngs::SmallRng;
use rand::Rng;
use std::net::Ipv4Addr;

pub const DOMAIN: &str = "corp.example.com";
/// Internal resolver every client asks; lookups stay inside, so only the inside tap sees them.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);
/// Public source-NAT pool of the edge firewall (TEST-NET-3, so it never names a real network).
pub const NAT_POOL: [Ipv4Addr; 4] = [
    Ipv4Addr::new(203, 0, 113, 10),
    Ipv4Addr::new(203, 0, 113, 11),
    Ipv4Addr::new(203, 0, 113, 12),
    Ipv4Addr::new(203, 0, 113, 13),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

/// What a server speaks on one port: drives the application fields each sensor writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    pub port: u16,
    pub transport: Transport,
    /// Zeek `service` / Suricata `app_proto` name, `None` where they would not identify one.
    pub app: Option<&'static str>,
    /// PAN-OS App-ID.
    pub panos_app: &'static str,
    /// IANA service name Sysmon writes as `DestinationPortName`.
    pub port_name: &'static str,
}

const HTTPS: Service = svc(443, Transport::Tcp, Some("ssl"), "ssl", "https");
const HTTP: Service = svc(80, Transport::Tcp, Some("http"), "web-browsing", "http");
const QUIC: Service = svc(443, Transport::Udp, None, "quic", "https");
const SSH: Service = svc(22, Transport::Tcp, Some("ssh"), "ssh", "ssh");
const NTP: Service = svc(123, Transport::Udp, Some("ntp"), "ntp", "ntp");
const SMB: Service = svc(
    445,
    Transport::Tcp,
    Some("smb"),
    "ms-ds-smb",
    "microsoft-ds",
);
const LDAP: Service = svc(389, Transport::Tcp, Some("ldap"), "ldap", "ldap");
const KERBEROS: Service = svc(88, Transport::Tcp, Some("krb_tcp"), "kerberos", "kerberos");
const MSSQL: Service = svc(1433, Transport::Tcp, None, "mssql-db", "ms-sql-s");
const RDP: Service = svc(3389, Transport::Tcp, Some("rdp"), "ms-rdp", "ms-wbt-server");
const PROXY: Service = svc(
    8080,
    Transport::Tcp,
    Some("http"),
    "web-browsing",
    "http-alt",
);
const SMTP: Service = svc(25, Transport::Tcp, Some("smtp"), "smtp", "smtp");
pub const DNS: Service = svc(53, Transport::Udp, Some("dns"), "dns", "domain");

const fn svc(
    port: u16,
    transport: Transport,
    app: Option<&'static str>,
    panos_app: &'static str,
    port_name: &'static str,
) -> Service {
    Service {
        port,
        transport,
        app,
        panos_app,
        port_name,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Internet,
    Dmz,
    DataCenter,
}

impl Zone {
    pub fn panos(self) -> &'static str {
        match self {
            Zone::Internet => "untrust",
            Zone::Dmz => "dmz",
            Zone::DataCenter => "datacenter",
        }
    }

    pub fn interface(self) -> &'static str {
        match self {
            Zone::Internet => "ethernet1/1",
            Zone::Dmz => "ethernet1/3",
            Zone::DataCenter => "ethernet1/4",
        }
    }
}

pub struct Server {
    pub ip: Ipv4Addr,
    pub name: String,
    pub zone: Zone,
    pub services: Vec<Service>,
}

/// A process on a client that opens connections, with the executable Sysmon reports.
pub struct Program {
    pub image: &'static str,
    pub weight: u32,
}

pub const PROGRAMS: [Program; 7] = [
    Program {
        image: "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        weight: 40,
    },
    Program {
        image: "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
        weight: 20,
    },
    Program {
        image: "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        weight: 10,
    },
    Program {
        image: "C:\\Users\\Public\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
        weight: 10,
    },
    Program {
        image: "C:\\Windows\\System32\\svchost.exe",
        weight: 12,
    },
    Program {
        image: "C:\\Windows\\explorer.exe",
        weight: 5,
    },
    Program {
        image: "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        weight: 3,
    },
];

pub struct Client {
    pub ip: Ipv4Addr,
    /// Short host name (`WS-0042`); the FQDN is this plus [`DOMAIN`].
    pub host: String,
    pub fqdn: String,
    pub user: String,
    /// Process ids of [`PROGRAMS`] on this host, fixed so a host's connections look like one machine's.
    pub pids: [u32; PROGRAMS.len()],
    pub process_guids: [String; PROGRAMS.len()],
    /// Not every machine runs the endpoint agent.
    pub has_agent: bool,
}

pub struct World {
    pub clients: Vec<Client>,
    pub internet: Vec<Server>,
    pub dmz: Vec<Server>,
    pub datacenter: Vec<Server>,
}

const FIRST_NAMES: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];
const LAST_NAMES: [&str; 12] = [
    "smith", "jones", "miller", "davis", "garcia", "wilson", "moore", "taylor", "thomas", "white",
    "harris", "clark",
];
const WORDS: [&str; 24] = [
    "cdn",
    "api",
    "static",
    "img",
    "login",
    "update",
    "telemetry",
    "mail",
    "docs",
    "files",
    "news",
    "shop",
    "media",
    "video",
    "auth",
    "sync",
    "assets",
    "edge",
    "portal",
    "data",
    "app",
    "cloud",
    "status",
    "search",
];
const BRANDS: [&str; 20] = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "wonka",
    "gringotts",
    "aperture",
    "blackmesa",
    "oscorp",
    "piedpiper",
    "massive",
    "nakatomi",
    "monarch",
];
const TLDS: [&str; 5] = ["com", "net", "io", "org", "cloud"];
/// First octets of large hosting/CDN blocks, so server addresses look like the public internet.
const PUBLIC_FIRST_OCTETS: [u8; 16] = [
    3, 13, 18, 20, 23, 34, 35, 40, 44, 52, 54, 104, 142, 151, 185, 199,
];

impl World {
    pub fn new(rng: &mut SmallRng) -> World {
        let clients = (0..2000u32).map(|i| client(rng, i)).collect();
        let internet = (0..3000).map(|i| internet_server(rng, i)).collect();
        let dmz = vec![
            inside(172, 16, 10, 10, "mail", Zone::Dmz, vec![HTTPS, SMTP]),
            inside(172, 16, 10, 20, "proxy", Zone::Dmz, vec![PROXY]),
            inside(172, 16, 10, 30, "www", Zone::Dmz, vec![HTTPS, HTTP]),
            inside(172, 16, 10, 40, "vpn", Zone::Dmz, vec![HTTPS]),
            inside(172, 16, 10, 50, "sftp", Zone::Dmz, vec![SSH]),
        ];
        let datacenter = vec![
            inside(
                10,
                20,
                0,
                10,
                "dc01",
                Zone::DataCenter,
                vec![KERBEROS, LDAP, SMB],
            ),
            inside(
                10,
                20,
                0,
                11,
                "dc02",
                Zone::DataCenter,
                vec![KERBEROS, LDAP],
            ),
            inside(10, 20, 1, 20, "files", Zone::DataCenter, vec![SMB]),
            inside(
                10,
                20,
                2,
                30,
                "intranet",
                Zone::DataCenter,
                vec![HTTPS, HTTP],
            ),
            inside(10, 20, 3, 40, "sql01", Zone::DataCenter, vec![MSSQL]),
            inside(10, 20, 4, 50, "jump", Zone::DataCenter, vec![RDP, SSH]),
            inside(10, 20, 5, 60, "ntp", Zone::DataCenter, vec![NTP]),
        ];
        World {
            clients,
            internet,
            dmz,
            datacenter,
        }
    }

    /// Popular servers get most sessions, as on a real network: the index is drawn with density
    /// falling off towards the end of the list.
    pub fn pick_internet(&self, rng: &mut SmallRng) -> &Server {
        let u: f64 = rng.random();
        &self.internet[((u * u * u) * self.internet.len() as f64) as usize]
    }

    pub fn pick_client(&self, rng: &mut SmallRng) -> (usize, &Client) {
        let i = rng.random_range(0..self.clients.len());
        (i, &self.clients[i])
    }
}

fn client(rng: &mut SmallRng, i: u32) -> Client {
    // Four /16 access networks; host parts avoid .0 and .255.
    let ip = Ipv4Addr::new(
        10,
        1 + (i % 4) as u8,
        rng.random_range(0..=255),
        rng.random_range(1..=254),
    );
    let prefix = if i.is_multiple_of(3) { "LT" } else { "WS" };
    let host = format!("{prefix}-{i:04}");
    let fqdn = format!("{host}.{DOMAIN}");
    let user = format!(
        "{}.{}",
        FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
        LAST_NAMES[rng.random_range(0..LAST_NAMES.len())]
    );
    let pids = std::array::from_fn(|_| rng.random_range(1000..30000u32) & !3);
    let process_guids = std::array::from_fn(|_| guid(rng));
    Client {
        ip,
        host,
        fqdn,
        user,
        pids,
        process_guids,
        has_agent: rng.random_bool(0.92),
    }
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` in upper case, as Sysmon writes process GUIDs.
pub fn guid(rng: &mut SmallRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032X}");
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn internet_server(rng: &mut SmallRng, i: usize) -> Server {
    let ip = Ipv4Addr::new(
        PUBLIC_FIRST_OCTETS[rng.random_range(0..PUBLIC_FIRST_OCTETS.len())],
        rng.random_range(0..=255),
        rng.random_range(0..=255),
        rng.random_range(1..=254),
    );
    let name = format!(
        "{}.{}{}.{}",
        WORDS[rng.random_range(0..WORDS.len())],
        BRANDS[i % BRANDS.len()],
        i / BRANDS.len(),
        TLDS[rng.random_range(0..TLDS.len())]
    );
    let services = match rng.random_range(0..100) {
        0..=69 => vec![HTTPS],
        70..=84 => vec![HTTPS, HTTP],
        85..=91 => vec![HTTP],
        92..=96 => vec![HTTPS, QUIC],
        97..=98 => vec![SSH],
        _ => vec![NTP],
    };
    Server {
        ip,
        name,
        zone: Zone::Internet,
        services,
    }
}

fn inside(a: u8, b: u8, c: u8, d: u8, host: &str, zone: Zone, services: Vec<Service>) -> Server {
    Server {
        ip: Ipv4Addr::new(a, b, c, d),
        name: format!("{host}.{DOMAIN}"),
        zone,
        services,
    }
}

pub fn weighted_program(rng: &mut SmallRng) -> usize {
    let total: u32 = PROGRAMS.iter().map(|p| p.weight).sum();
    let mut x = rng.random_range(0..total);
    for (i, p) in PROGRAMS.iter().enumerate() {
        if x < p.weight {
            return i;
        }
        x -= p.weight;
    }
    0
}
