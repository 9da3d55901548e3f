//! Where cloud regions are, for ordering backends by distance.
//!
//! Source: each provider's own list of its regions and the city (or
//! metro area) it names for each (AWS "Regions and Availability Zones",
//! Google Cloud "Regions and zones", Azure "Azure geographies", Oracle
//! "Regions and Availability Domains"), placed at that city's coordinates
//! rounded to 0.1 degree. That is precise enough to order backends
//! hundreds of kilometres apart; `[[location]]` in the config adds a
//! region or corrects one.

/// (provider, region, latitude, longitude).
pub const REGIONS: &[(&str, &str, f64, f64)] = &[
    // AWS
    ("aws", "us-east-1", 39.0, -77.5),       // N. Virginia
    ("aws", "us-east-2", 40.0, -83.0),       // Ohio
    ("aws", "us-west-1", 37.8, -122.4),      // N. California
    ("aws", "us-west-2", 45.8, -119.7),      // Oregon
    ("aws", "af-south-1", -33.9, 18.4),      // Cape Town
    ("aws", "ap-east-1", 22.3, 114.2),       // Hong Kong
    ("aws", "ap-east-2", 25.0, 121.5),       // Taipei
    ("aws", "ap-south-1", 19.1, 72.9),       // Mumbai
    ("aws", "ap-south-2", 17.4, 78.5),       // Hyderabad
    ("aws", "ap-southeast-1", 1.4, 103.8),   // Singapore
    ("aws", "ap-southeast-2", -33.9, 151.2), // Sydney
    ("aws", "ap-southeast-3", -6.2, 106.8),  // Jakarta
    ("aws", "ap-southeast-4", -37.8, 145.0), // Melbourne
    ("aws", "ap-southeast-5", 3.1, 101.7),   // Malaysia
    ("aws", "ap-southeast-6", -36.8, 174.8), // New Zealand
    ("aws", "ap-southeast-7", 13.8, 100.5),  // Thailand
    ("aws", "ap-northeast-1", 35.7, 139.7),  // Tokyo
    ("aws", "ap-northeast-2", 37.6, 127.0),  // Seoul
    ("aws", "ap-northeast-3", 34.7, 135.5),  // Osaka
    ("aws", "ca-central-1", 45.5, -73.6),    // Montreal
    ("aws", "ca-west-1", 51.0, -114.1),      // Calgary
    ("aws", "cn-north-1", 39.9, 116.4),      // Beijing
    ("aws", "cn-northwest-1", 37.5, 105.2),  // Ningxia
    ("aws", "eu-central-1", 50.1, 8.7),      // Frankfurt
    ("aws", "eu-central-2", 47.4, 8.5),      // Zurich
    ("aws", "eu-west-1", 53.3, -6.3),        // Ireland
    ("aws", "eu-west-2", 51.5, -0.1),        // London
    ("aws", "eu-west-3", 48.9, 2.4),         // Paris
    ("aws", "eu-south-1", 45.5, 9.2),        // Milan
    ("aws", "eu-south-2", 41.6, -0.9),       // Spain (Aragón)
    ("aws", "eu-north-1", 59.3, 18.1),       // Stockholm
    ("aws", "il-central-1", 32.1, 34.8),     // Tel Aviv
    ("aws", "me-south-1", 26.1, 50.6),       // Bahrain
    ("aws", "me-central-1", 25.2, 55.3),     // UAE
    ("aws", "mx-central-1", 20.6, -100.4),   // Mexico (Querétaro)
    ("aws", "sa-east-1", -23.5, -46.6),      // São Paulo
    // Google Cloud
    ("gcp", "us-central1", 41.3, -95.9), // Council Bluffs, Iowa
    ("gcp", "us-east1", 33.2, -80.0),    // Moncks Corner, South Carolina
    ("gcp", "us-east4", 39.0, -77.5),    // Ashburn, Virginia
    ("gcp", "us-east5", 40.0, -83.0),    // Columbus, Ohio
    ("gcp", "us-south1", 32.8, -96.8),   // Dallas
    ("gcp", "us-west1", 45.6, -121.2),   // The Dalles, Oregon
    ("gcp", "us-west2", 34.1, -118.2),   // Los Angeles
    ("gcp", "us-west3", 40.8, -111.9),   // Salt Lake City
    ("gcp", "us-west4", 36.2, -115.1),   // Las Vegas
    ("gcp", "northamerica-northeast1", 45.5, -73.6), // Montréal
    ("gcp", "northamerica-northeast2", 43.7, -79.4), // Toronto
    ("gcp", "northamerica-south1", 20.6, -100.4), // Querétaro
    ("gcp", "southamerica-east1", -23.5, -46.6), // São Paulo
    ("gcp", "southamerica-west1", -33.4, -70.6), // Santiago
    ("gcp", "europe-west1", 50.5, 3.8),  // St. Ghislain, Belgium
    ("gcp", "europe-west2", 51.5, -0.1), // London
    ("gcp", "europe-west3", 50.1, 8.7),  // Frankfurt
    ("gcp", "europe-west4", 53.4, 6.8),  // Eemshaven, Netherlands
    ("gcp", "europe-west6", 47.4, 8.5),  // Zurich
    ("gcp", "europe-west8", 45.5, 9.2),  // Milan
    ("gcp", "europe-west9", 48.9, 2.4),  // Paris
    ("gcp", "europe-west10", 52.5, 13.4), // Berlin
    ("gcp", "europe-west12", 45.1, 7.7), // Turin
    ("gcp", "europe-central2", 52.2, 21.0), // Warsaw
    ("gcp", "europe-north1", 60.6, 27.2), // Hamina, Finland
    ("gcp", "europe-north2", 59.3, 18.1), // Stockholm
    ("gcp", "europe-southwest1", 40.4, -3.7), // Madrid
    ("gcp", "me-central1", 25.3, 51.5),  // Doha
    ("gcp", "me-central2", 26.4, 50.1),  // Dammam
    ("gcp", "me-west1", 32.1, 34.8),     // Tel Aviv
    ("gcp", "africa-south1", -26.2, 28.0), // Johannesburg
    ("gcp", "asia-east1", 24.1, 120.5),  // Changhua County, Taiwan
    ("gcp", "asia-east2", 22.3, 114.2),  // Hong Kong
    ("gcp", "asia-northeast1", 35.7, 139.7), // Tokyo
    ("gcp", "asia-northeast2", 34.7, 135.5), // Osaka
    ("gcp", "asia-northeast3", 37.6, 127.0), // Seoul
    ("gcp", "asia-south1", 19.1, 72.9),  // Mumbai
    ("gcp", "asia-south2", 28.6, 77.2),  // Delhi
    ("gcp", "asia-southeast1", 1.4, 103.7), // Jurong West, Singapore
    ("gcp", "asia-southeast2", -6.2, 106.8), // Jakarta
    ("gcp", "australia-southeast1", -33.9, 151.2), // Sydney
    ("gcp", "australia-southeast2", -37.8, 145.0), // Melbourne
    // Azure
    ("azure", "eastus", 36.7, -78.4),              // Virginia
    ("azure", "eastus2", 36.7, -78.4),             // Virginia
    ("azure", "centralus", 41.6, -93.6),           // Iowa
    ("azure", "northcentralus", 41.9, -87.6),      // Illinois
    ("azure", "southcentralus", 29.4, -98.5),      // Texas
    ("azure", "westcentralus", 41.1, -104.8),      // Wyoming
    ("azure", "westus", 37.8, -122.4),             // California
    ("azure", "westus2", 47.2, -119.9),            // Washington
    ("azure", "westus3", 33.4, -112.1),            // Phoenix
    ("azure", "canadacentral", 43.7, -79.4),       // Toronto
    ("azure", "canadaeast", 46.8, -71.2),          // Quebec City
    ("azure", "mexicocentral", 20.6, -100.4),      // Querétaro
    ("azure", "brazilsouth", -23.5, -46.6),        // São Paulo State
    ("azure", "northeurope", 53.3, -6.3),          // Ireland
    ("azure", "westeurope", 52.4, 4.9),            // Netherlands
    ("azure", "uksouth", 51.5, -0.1),              // London
    ("azure", "ukwest", 51.5, -3.2),               // Cardiff
    ("azure", "francecentral", 48.9, 2.4),         // Paris
    ("azure", "germanywestcentral", 50.1, 8.7),    // Frankfurt
    ("azure", "switzerlandnorth", 47.4, 8.5),      // Zurich
    ("azure", "norwayeast", 59.9, 10.8),           // Oslo
    ("azure", "swedencentral", 60.7, 17.1),        // Gävle
    ("azure", "polandcentral", 52.2, 21.0),        // Warsaw
    ("azure", "italynorth", 45.5, 9.2),            // Milan
    ("azure", "spaincentral", 40.4, -3.7),         // Madrid
    ("azure", "israelcentral", 32.1, 34.8),        // Israel
    ("azure", "qatarcentral", 25.3, 51.5),         // Doha
    ("azure", "uaenorth", 25.2, 55.3),             // Dubai
    ("azure", "southafricanorth", -26.2, 28.0),    // Johannesburg
    ("azure", "centralindia", 18.5, 73.9),         // Pune
    ("azure", "southindia", 13.1, 80.3),           // Chennai
    ("azure", "westindia", 19.1, 72.9),            // Mumbai
    ("azure", "eastasia", 22.3, 114.2),            // Hong Kong
    ("azure", "southeastasia", 1.4, 103.8),        // Singapore
    ("azure", "japaneast", 35.7, 139.7),           // Tokyo
    ("azure", "japanwest", 34.7, 135.5),           // Osaka
    ("azure", "koreacentral", 37.6, 127.0),        // Seoul
    ("azure", "koreasouth", 35.2, 129.1),          // Busan
    ("azure", "australiaeast", -33.9, 151.2),      // New South Wales
    ("azure", "australiasoutheast", -37.8, 145.0), // Victoria
    ("azure", "australiacentral", -35.3, 149.1),   // Canberra
    // Oracle Cloud
    ("oracle", "us-ashburn-1", 39.0, -77.5),
    ("oracle", "us-phoenix-1", 33.4, -112.1),
    ("oracle", "us-sanjose-1", 37.3, -121.9),
    ("oracle", "us-chicago-1", 41.9, -87.6),
    ("oracle", "ca-toronto-1", 43.7, -79.4),
    ("oracle", "ca-montreal-1", 45.5, -73.6),
    ("oracle", "mx-queretaro-1", 20.6, -100.4),
    ("oracle", "mx-monterrey-1", 25.7, -100.3),
    ("oracle", "sa-saopaulo-1", -23.5, -46.6),
    ("oracle", "sa-vinhedo-1", -23.0, -47.0),
    ("oracle", "sa-santiago-1", -33.4, -70.6),
    ("oracle", "sa-valparaiso-1", -33.0, -71.6),
    ("oracle", "sa-bogota-1", 4.7, -74.1),
    ("oracle", "uk-london-1", 51.5, -0.1),
    ("oracle", "uk-cardiff-1", 51.5, -3.2),
    ("oracle", "eu-frankfurt-1", 50.1, 8.7),
    ("oracle", "eu-amsterdam-1", 52.4, 4.9),
    ("oracle", "eu-zurich-1", 47.4, 8.5),
    ("oracle", "eu-paris-1", 48.9, 2.4),
    ("oracle", "eu-marseille-1", 43.3, 5.4),
    ("oracle", "eu-milan-1", 45.5, 9.2),
    ("oracle", "eu-madrid-1", 40.4, -3.7),
    ("oracle", "eu-stockholm-1", 59.3, 18.1),
    ("oracle", "me-jeddah-1", 21.5, 39.2),
    ("oracle", "me-riyadh-1", 24.7, 46.7),
    ("oracle", "me-dubai-1", 25.2, 55.3),
    ("oracle", "me-abudhabi-1", 24.5, 54.4),
    ("oracle", "il-jerusalem-1", 31.8, 35.2),
    ("oracle", "af-johannesburg-1", -26.2, 28.0),
    ("oracle", "ap-mumbai-1", 19.1, 72.9),
    ("oracle", "ap-hyderabad-1", 17.4, 78.5),
    ("oracle", "ap-singapore-1", 1.4, 103.8),
    ("oracle", "ap-tokyo-1", 35.7, 139.7),
    ("oracle", "ap-osaka-1", 34.7, 135.5),
    ("oracle", "ap-seoul-1", 37.6, 127.0),
    ("oracle", "ap-chuncheon-1", 37.9, 127.7),
    ("oracle", "ap-sydney-1", -33.9, 151.2),
    ("oracle", "ap-melbourne-1", -37.8, 145.0),
];
