"""Request and response bodies copied from the OME v1 reference (../shared/spec/003_*.txt)."""

CREATE_VHOSTS_REQUEST = [
    {
        "name": "vhost",
        "host": {
            "names": ["ome-dev.airensoft.com", "prod.airensoft.com"],
            "tls": {
                "certPath": "/etc/pki/airensoft.com/_airensoft_com.crt",
                "chainCertPath": "/etc/pki/airensoft.com/_airensoft_com.ca-bundle",
                "keyPath": "/etc/pki/airensoft.com/_airensoft_com.key",
            },
        },
        "signedPolicy": {
            "enables": {"providers": "rtmp,webrtc,srt", "publishers": "webrtc,llhls"},
            "policyQueryKeyName": "policy",
            "secretKey": "aKq#1kj",
            "signatureQueryKeyName": "signature",
        },
        "admissionWebhooks": {
            "controlServerUrl": "https://control.server/admission",
            "enables": {"providers": "rtmp,webrtc,srt", "publishers": "webrtc,llhls"},
            "secretKey": "",
            "timeout": 3000,
        },
        "origins": {
            "origin": [
                {
                    "location": "/app/rtsp",
                    "pass": {"scheme": "rtsp", "urls": {"url": ["rtsp.server:8554/ca-01"]}},
                }
            ]
        },
        "originMapStore": {
            "originHostName": "ome-dev.airensoft.com",
            "redisServer": {"auth": "!@#ovenmediaengine", "host": "redis.server:6379"},
        },
    },
    {
        "name": "vhost2",
        "host": {
            "names": ["ovenmediaengine.com"],
            "tls": {
                "certPath": "/etc/pki/ovenmediaengine.com/_ovenmediaengine_com.crt",
                "chainCertPath": "/etc/pki/ovenmediaengine.com/_ovenmediaengine_com.ca-bundle",
                "keyPath": "/etc/pki/ovenmediaengine.com/_ovenmediaengine_com.key",
            },
        },
    },
]

DEFAULT_OUTPUT_PROFILES = {
    "outputProfile": [
        {
            "encodes": {
                "audios": [
                    {
                        "bitrate": 128000,
                        "bypassIfMatch": {"codec": "eq"},
                        "channel": 2,
                        "codec": "opus",
                        "name": "opus",
                        "samplerate": 48000,
                    },
                    {
                        "bitrate": 128000,
                        "bypassIfMatch": {"codec": "eq"},
                        "channel": 2,
                        "codec": "aac",
                        "name": "aac",
                        "samplerate": 48000,
                    },
                ],
                "videos": [{"bypass": True, "name": "bypass_video"}],
            },
            "name": "bypass",
            "outputStreamName": "${OriginStreamName}",
        }
    ]
}

# GET /v1/vhosts/default/apps/app in the spec (an app created with the defaults).
GET_APP_RESPONSE = {
    "statusCode": 200,
    "message": "OK",
    "response": {
        "dynamic": False,
        "name": "app",
        "type": "live",
        "outputProfiles": DEFAULT_OUTPUT_PROFILES,
        "providers": {"ovt": {}, "rtmp": {}, "rtspPull": {}, "srt": {}, "webrtc": {}},
        "publishers": {"llhls": {}, "ovt": {}, "webrtc": {}},
    },
}

CREATE_APP_REQUEST = [
    {
        "name": "app",
        "type": "live",
        "outputProfiles": {
            "outputProfile": [
                {
                    "name": "default",
                    "outputStreamName": "${OriginStreamName}",
                    "encodes": {
                        "audios": [
                            {
                                "name": "opus",
                                "codec": "opus",
                                "samplerate": 48000,
                                "bitrate": 128000,
                                "channel": 2,
                                "bypassIfMatch": {"codec": "eq"},
                            },
                            {
                                "name": "aac",
                                "codec": "aac",
                                "samplerate": 48000,
                                "bitrate": 128000,
                                "channel": 2,
                                "bypassIfMatch": {"codec": "eq"},
                            },
                        ],
                        "videos": [{"name": "bypass_video", "bypass": True}],
                    },
                }
            ]
        },
        "providers": {"ovt": {}, "rtmp": {}, "rtspPull": {}, "srt": {}, "webrtc": {}},
        "publishers": {"llhls": {}, "ovt": {}, "webrtc": {}},
    }
]

PATCH_APP_REQUEST = {"providers": {"webrtc": {"timeout": 60000}}}

CREATE_PROFILE_REQUEST = [
    {
        "name": "bypass_profile",
        "outputStreamName": "${OriginStreamName}_bypass",
        "encodes": {"videos": [{"bypass": True}], "audios": [{"bypass": True}]},
    }
]
