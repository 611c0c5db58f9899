"""Face models behind one port (``port.FaceEncoder``) and the image handling every model shares (``images``).
The real adapter is dlib's (``dlib_encoder``); another model plugs in by implementing the port."""
