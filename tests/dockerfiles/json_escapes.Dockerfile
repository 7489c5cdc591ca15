FROM busybox
CMD ["echo", "tab\there", "quote\"d", "back\\slash", "\u00e9", "$HOME"]
