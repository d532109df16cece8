"""`facetrack eval`: accuracy figures anyone can reproduce from the README.

synthetic   vertex error (mm, after similarity alignment) and rotation error on fixed-seed synthetic faces
images      photometric error per pixel and identity similarity on a folder of real photos
landmarks   68-point NME and pose error on AFLW2000-3D style data (image + .mat)
video       tracking success and landmark jitter on still segments, against raw dlib landmarks

Each returns a plain dict; `report.write_report` turns one or several (one per weights folder) into
report.json and a Markdown table. Bad inputs are counted under "skipped", never fatal.
"""
