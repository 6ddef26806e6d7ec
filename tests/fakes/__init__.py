"""Fakes of the outside world the tests cannot reach (WeChat, WeCom), run on loopback."""
